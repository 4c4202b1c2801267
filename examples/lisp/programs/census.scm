;; census.scm — (gc-census): the live heap by object kind, counted after a
;; full collection ((kind count bytes) per type name, through mulch's
;; gc_heap_walk; the Boehm backend has no census). Mulch backend only.
;; Counts are compared within one expression: the interpreter itself keeps
;; a few pairs per top-level form.
(define (census-of kind) (assq kind (gc-census)))
(define (build n acc) (if (= n 0) acc (build (- n 1) (cons n acc))))

;; how many more objects of `kind` are live while (make)'s result is held
(define (held-by kind make)
  (let ((before (cadr (census-of kind))))
    (let ((kept (make)))
      (- (cadr (census-of kind)) before))))

(display "a 1000-element list holds pairs: ")
(display (held-by 'lisp-pair (lambda () (build 1000 '()))))
(newline)
(display "a dropped one holds: ")
(display (held-by 'lisp-pair (lambda () (build 1000 '()) 'dropped)))
(newline)
(display "a vector of 100: ")
(display (held-by 'lisp-vector (lambda () (make-vector 100 0))))
(newline)
(display "its bytes, at least 800: ")
(display (let ((before (caddr (census-of 'lisp-vector))))
           (let ((v (make-vector 100 0)))
             (>= (- (caddr (census-of 'lisp-vector)) before) 800))))
(newline)
(display "kinds: ")
(display (map car (gc-census)))
(newline)
