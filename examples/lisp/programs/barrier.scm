;; barrier.scm — stores of new objects into old ones, through every way the
;; language has to mutate: set-car!, set-cdr!, vector-set!, set! of a
;; global and of a captured local, an internal define into an existing
;; frame, string->symbol (the symbol table). In a generational heap
;; (lisp_barrier_generational) each such store must pass the write barrier:
;; the (gc) calls make the containers old, and the churn after the stores
;; runs minor collections that would free an unrecorded young object (and
;; MULCH_GC_VERIFY reports the old object before they do).
(define (show . items) (for-each display items) (newline))

(define vec (make-vector 20 0))
(define lst (list 'a 'b 'c))
(define glob #f)
(define (make-counter)
  (let ((state '()))
    (lambda (x) (set! state (cons x state)) state)))
(define counter (make-counter))
(define (make-definer)
  (lambda (n)
    (define inner (list n (* n n)))   ; an internal define: a new binding in a new frame
    (lambda () inner)))
(define definer (make-definer))
(gc)
(gc)

(let loop ((i 0))
  (when (< i 20)
    (vector-set! vec i (list i (number->string (* i i))))
    (loop (+ i 1))))
(set-car! lst (list "fresh" 'car))
(set-cdr! (cddr lst) (list (vector 1 2 3)))
(set! glob (string-append "glo" "bal"))
(counter (list 1 2))
(counter (list->string (list #\x)))
(define held (definer 12))
(define made (string->symbol (string-append "brand-" "new-" "symbol")))

;; many short-lived objects: minor collections (and, under Boehm or in the
;; default mode, full ones)
(define (churn n keep)
  (if (= n 0)
      keep
      (churn (- n 1) (if (< (length keep) 40) (cons (list n n) keep) '()))))
(churn 30000 '())

(show "vector: " (vector-ref vec 0) " " (vector-ref vec 7) " " (vector-ref vec 19))
(show "list: " lst)
(show "global: " glob)
(show "counter: " (counter 'last))
(show "internal define: " (held))
(show "symbol: " made " " (eq? made (string->symbol "brand-new-symbol")))
