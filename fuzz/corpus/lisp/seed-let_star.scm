;; let_star.scm — let* binds one variable after the other, as nested lets
;; (R7RS): an init, and a closure that an init makes, sees the bindings
;; before it only. Its frame used to show each binding once made, so a
;; closure from an earlier init saw a later binding of the same name
;; (inner instead of outer below), and a name bound twice kept the first.
(define (show . items) (for-each display items) (newline))
(define y 'outer)
(show (let* ((f (lambda () y)) (y 'inner)) (list (f) y)))
(show (let* ((x 1) (x (+ x 1))) x))
(show (let ((x 10)) (let* ((x (+ x 1)) (y (* x 2))) (list x y))))
(show (let* ((a 1) (b (+ a 1)) (c (* b 3))) (define d (+ a b c)) (list a b c d)))
(show (let* () (define z 3) z))
(show (try (lambda () z) (lambda (m) m)))
(define (counter)
  (let* ((n 0) (next (lambda () (set! n (+ n 1)) n)))
    (next) (next) (list n (next))))
(show (counter))
(define (loop i acc)
  (if (= i 0) acc
      (loop (- i 1) (let* ((p (cons i acc)) (q (list p (make-vector 3 p)))) (car q)))))
(show (length (loop 2000 '())))
