;; cyclic.scm — an error message that shows a cyclic value is cut at the
;; message buffer's size instead of printing forever (the printer used to
;; loop, or recurse until the C stack ran out, on a cycle through a cdr, a
;; car or a vector). The program goes on afterwards.
(define (show . items) (for-each display items) (newline))
(define (catch thunk) (try thunk (lambda (message) message)))

(define through-cdr (list 1 2 3))
(set-cdr! (cddr through-cdr) through-cdr)
(show (catch (lambda () (vector-ref through-cdr 0))))
(define through-car (list 1 2))
(set-car! through-car through-car)
(show (string-length (catch (lambda () (+ 1 through-car)))))
(define through-vector (vector 1 2))
(vector-set! through-vector 1 through-vector)
(show (string-length (catch (lambda () (car through-vector)))))
(show (string-length (catch (lambda () (error "cycle:" through-cdr)))))
(gc)
(show "still fine: " (list (car through-cdr) (vector-ref through-vector 0)))
