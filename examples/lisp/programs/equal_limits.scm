;; equal_limits.scm — equal? on circular and very deep structures answers
;; as R7RS says (two circular lists that unfold to the same sequence are
;; equal) instead of looping forever or overflowing the C stack (nesting
;; through cars or vectors, which also covers cycles through them). It
;; used to report these as errors (caught by try, which still shows any);
;; equal_shared.scm has more. Structures that merely share parts, or where
;; only one side is circular, still compare.
(define (show . items) (for-each display items) (newline))
(define (catch thunk) (try thunk (lambda (message) message)))

(define (circular . items)
  (let ((l (apply list items)))
    (set-cdr! (list-tail l (- (length l) 1)) l)
    l))
(define (nest n acc) (if (= n 0) acc (nest (- n 1) (list acc))))
(define (nest-vector n acc) (if (= n 0) acc (nest-vector (- n 1) (vector acc))))

(show (catch (lambda () (equal? (circular 1 2) (circular 1 2)))))
(show (catch (lambda () (equal? (circular 1 2) (circular 1 2 1 2 1 2)))))
(show (catch (lambda () (equal? (cons 0 (circular 1 2 3)) (cons 0 (circular 1 2))))))
(show "one side circular: " (equal? (circular 1) '(1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1)))
(show "differs in the cycle: " (equal? (circular 1 2) (circular 1 3)))
(define self-car (list 1))
(set-car! self-car self-car)
(define other-car (list 1))
(set-car! other-car other-car)
(show (catch (lambda () (equal? self-car other-car))))
(define self-vector (vector 1 2))
(vector-set! self-vector 1 self-vector)
(define other-vector (vector 1 2))
(vector-set! other-vector 1 other-vector)
(show (catch (lambda () (equal? self-vector other-vector))))
(show "same object: " (equal? self-car self-car) " " (equal? self-vector self-vector))
(show (catch (lambda () (equal? (nest 110000 '()) (nest 110000 '())))))
(show (catch (lambda () (equal? (nest-vector 110000 1) (nest-vector 110000 1)))))
(show "deep but allowed: " (equal? (nest 9000 'x) (nest 9000 'x)) " "
      (equal? (nest 9000 'x) (nest 9000 'y)))
(define shared (list 1 2))
(show "shared parts: " (equal? (list shared shared) (list (list 1 2) (list 1 2))))
(show "long lists: " (equal? (vector->list (make-vector 150000 7)) (vector->list (make-vector 150000 7))))
