;; showcase.scm — a tour of the interpreter and of how it uses mulch: data
;; types, closures, tail calls, errors, ports, and the collector's own
;; figures. scripts/demo.sh runs it.
(define (show . items) (for-each display items) (newline))
(define (section title) (newline) (show "== " title))

(section "values")
(show "fixnums: " (+ 1 2 3) " " (* 6 7) " " (- 10) " " (quotient 17 5) " " (modulo -7 3))
(write (list "a string" #\x 'symbol #t #f '() (vector 1 "two" 'three) '(1 . 2)))
(newline)
(show "equal? " (equal? '(1 (2 #(3))) (list 1 (list 2 (vector 3)))) ", eq? " (eq? 'a 'a))

(section "closures and tail calls")
(define (make-counter)
  (let ((n 0)) (lambda () (set! n (+ n 1)) n)))
(define tick (make-counter))
(tick) (tick)
(show "counter: " (tick))
(define (loop-down n) (if (= n 0) 'done (loop-down (- n 1))))
(show "a million tail calls: " (loop-down 1000000))
(show "map/apply: " (apply + (map (lambda (x) (* x x)) '(1 2 3 4 5))))
(let loop ((i 0) (acc '()))
  (if (< i 5) (loop (+ i 1) (cons (* i i) acc)) (show "named let: " (reverse acc))))

(section "strings and vectors")
(define greeting (string-append "hello, " "mulch" "!"))
(show greeting " has " (string-length greeting) " characters; "
      (substring greeting 7 12) " is " (number->string 5) " of them")
(define v (make-vector 5 0))
(let fill ((i 0)) (when (< i 5) (vector-set! v i (* i 10)) (fill (+ i 1))))
(show "vector: " v " -> list " (vector->list v))

(section "errors unwind and report their line")
(show (try (lambda () (vector-ref v 10)) (lambda (m) m)))
(show (try (lambda () (error "something went wrong:" 'details 42)) (lambda (m) m)))
(show (try (lambda () (no-such-procedure)) (lambda (m) m)))

(section "ports: rc resources owned by GC objects")
(define out (open-output-file "showcase.txt"))
(display "one line, written through a port" out)
(newline out)
(close-port out)
(define in (open-input-file "showcase.txt"))
(show "read back: " (read-line in))
(close-port in)
(define (dropped-port)   ; never closed: the collector closes it
  (display "unreachable" (open-output-file "dropped.txt")))
(dropped-port)
(gc)
(display "gc: ports closed by the collector: ")
(display (ports-closed-by-gc))
(newline)
(show "stdout, held by the host through a handle: " (port? (current-output-port)))

(section "garbage")
(define (build n) (if (= n 0) '() (cons n (build (- n 1)))))
(define (churn rounds) (if (= rounds 0) 'ok (begin (build 1000) (churn (- rounds 1)))))
(show "churned 200 lists of 1000 pairs: " (churn 200))
(define kept (build 5000))
(gc)
(show "kept list survives collections: " (length kept) " pairs")

(section "heap census")
;; live objects by kind after a full collection (mulch's gc_heap_walk; the
;; Boehm build has no census and prints no rows)
(for-each (lambda (row)
            (show "gc: " (car row) ": " (cadr row) " objects, " (caddr row) " bytes"))
          (gc-census))

(section "collector statistics")
(for-each (lambda (entry)
            (display "gc: ")
            (display (car entry))
            (display " = ")
            (display (cdr entry))
            (newline))
          (gc-stats))
(show "collections happened: " (> (cdr (assq 'collections (gc-stats))) 0))
;; the same collections as mulch's collection callback reported them one by
;; one: why each ran, and which paused longest (the Boehm build prints none)
(let ((pauses (gc-pauses)))
  (if (pair? pauses)
      (let ((field (lambda (name) (cdr (assq name pauses)))))
        (show "gc: collections: " (field 'full) " full, " (field 'minor) " minor; "
              (field 'by-allocation) " for allocation, " (field 'by-gc) " by (gc), "
              (field 'by-heap-limit) " at the heap limit")
        (show "gc: longest pause: " (field 'longest-pause-ns) " ns, collection #"
              (field 'longest-pause-collection) " (" (field 'longest-pause-kind) ", reason "
              (field 'longest-pause-reason) ")")
        (show "gc: most threads marking in one collection: " (field 'most-markers)))))
