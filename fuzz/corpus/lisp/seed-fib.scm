;; fib.scm — naive doubly recursive Fibonacci: calls and fixnum arithmetic,
;; almost no allocation.   mulch-lisp fib.scm [n]
(define n (if (null? *args*) 20 (string->number (car *args*))))

(define (fib n)
  (if (< n 2)
      n
      (+ (fib (- n 1)) (fib (- n 2)))))

(define (show . items)
  (for-each display items)
  (newline))

(show "fib(" n ") = " (fib n))
(show "fib 0..15: " (map fib '(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)))
