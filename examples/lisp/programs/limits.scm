;; limits.scm — out-of-range indices and integer limits are errors (caught
;; by try), never a wrong value: list-ref and list-tail took a negative
;; index for 0.
(define (show . items) (for-each display items) (newline))
(define (catch thunk) (try thunk (lambda (message) message)))

(show (catch (lambda () (list-ref '(a b c) -1))))
(show (catch (lambda () (list-tail '(a b c) -2))))
(show (catch (lambda () (list-ref '(a b c) 3))))
(show (catch (lambda () (list-tail '(a b c) 4))))
(show (list-ref '(a b c) 2) " " (list-tail '(a b c) 3) " " (list-tail '(a b c) 1))
(show (catch (lambda () (string-ref "abc" 3))))
(show (catch (lambda () (string-ref "abc" -1))))
(show (catch (lambda () (substring "abc" 2 4))))
(show (catch (lambda () (substring "abc" 2 1))))
(show "[" (substring "abc" 3) "] [" (substring "abc" 0 0) "]")
(show (catch (lambda () (vector-ref (vector 1 2) -1))))
(show (catch (lambda () (vector-set! (vector) 0 1))))
(show (catch (lambda () (integer->char 256))))
(show (catch (lambda () (make-vector -1))))

;; Fixnums are 63-bit: results outside the range are errors; partial sums
;; and products outside it are not, when the result fits.
(define max 4611686018427387903)
(define min -4611686018427387904)
(show (catch (lambda () (+ max 1))) " / " (catch (lambda () (- min 1))))
(show (catch (lambda () (* min -1))) " / " (catch (lambda () (- min))))
(show (catch (lambda () (abs min))) " / " (catch (lambda () (quotient min -1))))
(show (catch (lambda () (* max max))) " / " (catch (lambda () (+ max max max))))
(show (+ max 1 -5) " " (- min 1 -1) " " (* max 2 0) " " (- max max) " " (+ min max))
(show (remainder min -1) " " (modulo min -1) " " (modulo -7 2) " " (modulo 7 -2))
(show (string->number "4611686018427387904") " " (string->number "-4611686018427387904"))

;; string->number takes the reader's integer syntax and nothing else: no
;; surrounding white space, no bytes after an embedded NUL.
(for-each (lambda (s) (write (string->number s)) (display " "))
          (list "12" "+5" "-0" "0012" " 12" "\n12" "12 " "+" "-" "" "12\x0;34" "1x"
                "4611686018427387903" "4611686018427387904" "99999999999999999999"))
(newline)
