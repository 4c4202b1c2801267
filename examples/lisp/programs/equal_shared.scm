;; equal_shared.scm — equal? on shared and circular structure ends, with
;; R7RS's answer. The plain recursion walked every path through shared
;; parts: (cons x x) nested 40 times is 2^40 paths through 41 pairs, and it
;; never finished; two circular structures looped (or were reported as an
;; error). Past a small budget equal? now merges the pairs and vectors it
;; has compared into classes (union-find) and compares each once.
(define (show . items) (for-each display items) (newline))

(define (nest n x) (if (= n 0) x (nest (- n 1) (cons x x))))
(define (nest-vector n x) (if (= n 0) x (nest-vector (- n 1) (vector x x x))))
(show "shared pairs: " (equal? (nest 40 1) (nest 40 1)) " " (equal? (nest 40 1) (nest 40 2))
      " " (equal? (nest 40 1) (nest 39 1)))
(show "shared vectors: " (equal? (nest-vector 30 "s") (nest-vector 30 "s")) " "
      (equal? (nest-vector 30 "s") (nest-vector 30 "t")))
;; the difference at the very end of a shared structure is still found
(define (nest-last n x) (if (= n 0) x (nest-last (- n 1) (list (nest 30 0) x))))
(show "last differs: " (equal? (nest-last 50 'a) (nest-last 50 'a)) " "
      (equal? (nest-last 50 'a) (nest-last 50 'b)))

(define (circular . items)
  (let ((l (apply list items)))
    (set-cdr! (list-tail l (- (length l) 1)) l)
    l))
(show "circular lists: " (equal? (circular 1 2) (circular 1 2)) " "
      (equal? (circular 1 2) (circular 1 2 1 2 1 2)) " "
      (equal? (circular 1 2) (circular 1 3)) " "
      (equal? (circular 1 2 3) (circular 1 2)))
(show "lassos: " (equal? (cons 0 (circular 1 2 3)) (cons 0 (circular 1 2 3))) " "
      (equal? (cons 0 (circular 1 2 3)) (cons 0 (circular 1 2))))
(define (self-car) (let ((p (list 1))) (set-car! p p) p))
(show "through cars: " (equal? (self-car) (self-car)) " " (equal? (self-car) (list (list (list 1)))))
(define (self-vector tag) (let ((v (vector tag 2))) (vector-set! v 1 v) v))
(show "vectors holding themselves: " (equal? (self-vector 'a) (self-vector 'a)) " "
      (equal? (self-vector 'a) (self-vector 'b)))
(define big-ring (apply circular (vector->list (make-vector 2000 "x"))))
(show "a long cycle: " (equal? big-ring (apply circular (vector->list (make-vector 2000 "x")))))
(show "one side circular: " (equal? (circular 1) (vector->list (make-vector 2000 1))))
;; (deep nesting, no longer limited by the C stack: equal_limits.scm)
;; still fine after a collection, and used by member and assoc
(gc)
(show "member: " (length (member (nest 40 1) (list 1 (nest 40 2) (nest 40 1) 3))) " "
      (cdr (assoc (circular 'k) (list (cons (circular 'j) 1) (cons (circular 'k 'k) 2)))))
(show "small values: " (equal? '(1 (2 #(3 "4")) . 5) '(1 (2 #(3 "4")) . 5)) " "
      (equal? '(1 (2 #(3 "4"))) '(1 (2 #(3 "5")))) " " (equal? "" "") " " (equal? #() '()))
