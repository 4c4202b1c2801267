;; ports.scm — ports are rc resources owned by their GC wrappers: closing
;; explicitly, reading back, and the collector closing (and so flushing) a
;; port nobody can reach. Run by the mulch build only: a conservative
;; collector may keep the dropped port alive.
(define (show . items) (for-each display items) (newline))

(define out (open-output-file "ports-test.txt"))
(write-string "first line" out)
(newline out)
(display 42 out)
(newline out)
(close-port out)
(show "closed: " (port-closed? out))
(show "write after close: " (try (lambda () (display "x" out)) (lambda (m) m)))

(define in (open-input-file "ports-test.txt"))
(show (read-line in))
(show (read-line in))
(show "eof: " (eof-object? (read-line in)))
(close-port in)

;; Written but never closed, then dropped: the collector must close it,
;; which flushes the buffered text to the file.
(define (write-and-drop path)
  (let ((p (open-output-file path)))
    (write-string "written by a dropped port" p)
    (newline p)))
;; (Counted from before the call: under MULCH_GC_STRESS a collection may
;; close the dropped port before the explicit one.)
(define before (ports-closed-by-gc))
(write-and-drop "dropped.txt")
(gc)
(show "closed by the collector: " (- (ports-closed-by-gc) before))
(define again (open-input-file "dropped.txt"))
(show "read back: " (read-line again))
(close-port again)

;; The standard output port is held by the host (a gc_handle): it survives
;; collections although nothing in Scheme refers to it.
(gc)
(display "via current-output-port" (current-output-port))
(newline (current-output-port))
(show (try (lambda () (open-input-file "no/such/file")) (lambda (m) m)))
