;; error_lines.scm — an error reports the line of the form it happens in,
;; also when a nested call that ran code on other lines returned just
;; before: the line used to stay at the last line that call ran (here
;; line 7, the body of twice), and a top-level variable reported the line
;; of an earlier form.
(define (twice x)
  (* x 2))
(define (show . items) (for-each display items) (newline))
(define (catch thunk) (try thunk (lambda (message) message)))

(show (catch (lambda () (list (twice 1) undefined-1))))
(show (catch (lambda () (if (twice 1)))))
(show (catch (lambda () (cond ((twice 1) => show)))))
(show (catch (lambda () (let ((a (twice 1))) (+ a (twice 2) 'b)))))
(show (catch (lambda () (twice (twice 'c)))))
(show (catch (lambda () (vector-ref (vector (twice 1)) (twice 1)))))
(show (catch (lambda () (list (catch (lambda () (twice 'd))) undefined-3))))
;; try's call of its handler is the try form's: its errors report that line
(show (catch (lambda () (try (lambda () (twice 'e)) (lambda () 'no-parameter)))))
(show (catch (lambda () (try (lambda () (twice 'f)) car))))
(define (fail-g) (twice 'g))
(show (catch (lambda () (list (try fail-g 5)))))
(show "still fine: " (twice 21))

undefined-2
(show "never printed")
