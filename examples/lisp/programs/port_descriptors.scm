;; port_descriptors.scm — a dropped port holds its file descriptor until
;; the collector closes it. Opening more files than the process may hold
;; at once still works: an open that runs out of descriptors collects
;; and tries again. ctest also runs this under `ulimit -n 32`
;; (lisp_port_descriptors_nofile, mulch build only).
(define (show . items) (for-each display items) (newline))

(define out (open-output-file "data.txt"))
(write-string "a line" out)
(newline out)
(close-port out)

;; 200 ports opened and dropped, never closed by the program.
(define (open-and-drop n last)
  (if (= n 0)
      last
      (open-and-drop (- n 1) (read-line (open-input-file "data.txt")))))
(show "read 200 times: " (open-and-drop 200 #f))

;; Ports still reachable are not closed behind the program's back.
(define kept (open-input-file "data.txt"))
(gc)
(show "kept port open: " (not (port-closed? kept)))
(show "kept port reads: " (read-line kept))
(close-port kept)
