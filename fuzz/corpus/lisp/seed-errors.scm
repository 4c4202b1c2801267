;; errors.scm — errors unwind cleanly and report the line of the failing
;; expression; (try thunk handler) catches them. The last error is not
;; caught: the script stops there with exit status 1.
(define (show . items) (for-each display items) (newline))
(define (catch thunk) (try thunk (lambda (message) message)))

(show (catch (lambda () (car 5))))
(show (catch (lambda () (vector-ref (vector 1 2) 2))))
(show (catch (lambda () (undefined-function 1))))
(show (catch (lambda () (error "custom failure:" 'code 42 "text"))))
(show (catch (lambda () ((lambda (a b) a) 1))))
(show (catch (lambda () (+ 1 "two"))))
(show (catch (lambda () (quotient 1 0))))

;; An error deep inside non-tail recursion, with allocation on the way:
;; the stacks unwind and the program goes on allocating.
(define (deep n)
  (if (= n 0)
      (error "bottom reached")
      (cons n (deep (- n 1)))))
(show (catch (lambda () (deep 5000))))
(define (build n) (if (= n 0) '() (cons n (build (- n 1)))))
(show "after unwinding: " (length (build 5000)))

;; Nested handlers: the inner one catches, the outer one sees its result.
(show (catch (lambda ()
               (string-append "inner caught: "
                              (catch (lambda () (string-length 'not-a-string)))))))
(show (catch (lambda () (let loop ((n 0)) (+ 1 (loop (+ n 1)))))))
(gc)
(show "still fine: " (apply + (build 100)))
;; A file name with a NUL byte names no file (fopen would have opened the
;; name up to the NUL: "nul" here): an error, and no file is made.
(show (catch (lambda () (open-output-file "nul\x0;.txt"))))
(show (catch (lambda () (open-input-file "nul"))))
(car '())
(show "never printed")
