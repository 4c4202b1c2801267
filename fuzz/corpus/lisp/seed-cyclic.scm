;; cyclic.scm — display and write print a cyclic structure finitely, with
;; R7RS datum labels: #0=(1 2 3 . #0#). They used to print forever on
;; stdout (or recurse until the C stack ran out, for a cycle through a car
;; or a vector); an error message showing one (a type error, error's
;; irritants) was cut at its buffer's size. Shared parts that form no cycle
;; still print in full. Data nested deeper than the printer's limit is an
;; error (after the part printed so far), not a C stack overflow.
(define (show . items) (for-each display items) (newline))
(define (catch thunk) (try thunk (lambda (message) message)))

(define through-cdr (list 1 2 3))
(set-cdr! (cddr through-cdr) through-cdr)
(define through-car (list 1 2))
(set-car! through-car through-car)
(define through-vector (vector 1 2))
(vector-set! through-vector 1 through-vector)
(define lasso (cons 'a (cons 'b through-cdr)))
(define self-tail (list 'x))
(set-cdr! self-tail self-tail)

(write through-cdr) (newline)
(write through-car) (newline)
(write through-vector) (newline)
(write lasso) (newline)
(write self-tail) (newline)
(write (list through-cdr through-cdr)) (newline)
(write (vector self-tail "s" #\c self-tail)) (newline)
(display (list "display" through-car)) (newline)
(define a (list 1 2))
(define b (list 3 a))
(set-car! a b)
(write (list a b)) (newline)
(define shared (list 1 2))
(write (list shared shared (vector shared))) (newline)
(write '(1 (2 3) #(4 (5)) . 6)) (newline)

(show (catch (lambda () (vector-ref through-cdr 0))))
(show (catch (lambda () (+ 1 through-car))))
(show (catch (lambda () (car through-vector))))
(show (catch (lambda () (error "cycle:" through-cdr lasso))))

(define (nest n acc) (if (= n 0) acc (nest (- n 1) (list acc))))
(define deep (nest 150000 'x))
(show (string-length (catch (lambda () (+ 1 deep)))))
(show (catch (lambda () (write deep (open-output-file "too-deep.txt")))))
(define port (open-output-file "deep.txt"))
(write (nest 9000 'x) port)
(close-port port)
(show "deep but allowed: " (string-length (read-line (open-input-file "deep.txt"))))
(gc)
(show "still fine: " (list (car through-cdr) (vector-ref through-vector 0)))
