;; bad_syntax.scm — malformed special forms and bodies are reported as
;; syntax errors (caught by try), never a crash. A body whose expression
;; list ends in a non-list tail (lambda (x) . 5) used to be walked as if it
;; were a pair.
(define (show . items) (for-each display items) (newline))
(define (catch thunk) (try thunk (lambda (message) message)))

(show (catch (lambda () ((lambda (x) . 5) 1))))
(show (catch (lambda () ((lambda (x) x . 5) 1))))
(define (dotted-body) 1 . 2)
(show (catch (lambda () (dotted-body))))
(show (catch (lambda () (begin 1 . 2))))
(show (catch (lambda () (let ((x 1)) . 5))))
(show (catch (lambda () (let* ((x 1)) x . 5))))
(show (catch (lambda () (letrec ((x 1)) . 5))))
(show (catch (lambda () (let loop ((i 0)) . 5))))
(show (catch (lambda () (cond (1 . 5)))))
(show (catch (lambda () (cond (else . 5)))))
(show (catch (lambda () (when 1 . 5))))
(show (catch (lambda () (unless #f 1 . 5))))
(show (catch (lambda () (apply (lambda (x) . 5) '(1)))))
(show (catch (lambda () (map (lambda (x) . 5) '(1)))))
;; parameters and let variables must be symbols: (lambda ((a b)) a) used to
;; bind a, as named let's (var init) parameters do
(show (catch (lambda () ((lambda (1) 5) 3))))
(show (catch (lambda () ((lambda ((a b)) a) 7))))
(show (catch (lambda () ((lambda (a . 1) a) 7))))
(show (catch (lambda () (define (f 1) 2) 1)))
(show (catch (lambda () (let ((1 2)) 3))))
(show (catch (lambda () (let* (("x" 2)) 3))))
(show (catch (lambda () (letrec ((#t 2)) 3))))
(show (catch (lambda () (let loop ((1 2)) 3))))
;; a binding that is no (var init) pair, after good ones: reported before
;; any init runs (letrec's init looking b up walked the bad binding)
(show (catch (lambda () (letrec ((a (lambda () b)) 5 (b 1)) (a)))))
(show (catch (lambda () (letrec ((a (thunk)) 7) a))))   ; thunk: a parameter above
(show (catch (lambda () (let* ((a 1) (b a) 7) b))))
(show (catch (lambda () (let loop ((i 0) j) i))))
;; a part too many, or an init missing, is an error (the extra part was
;; ignored: (quote 1 2) was 1, (define v 1 2) defined v)
(show (catch (lambda () (quote 1 2))))
(show (catch (lambda () (if #t 1 2 3))))
(show (catch (lambda () (if #f 1 2 3))))
(show (catch (lambda () (if #f 1 . 2))))
(define v 0)
(show (catch (lambda () (set! v 1 2))))
(show (catch (lambda () (define v 1 2) v)))
(show (catch (lambda () (let ((x 1 2)) x))))
(show (catch (lambda () (let* ((x)) x))))
(show (catch (lambda () (letrec ((x 1 2)) x))))
(show (catch (lambda () (let loop ((i 0 1)) i))))
(show "v is still " v ", " (if #f 1) (if #t 'one-armed))
(show "still fine: " ((lambda (x) (+ x 1)) 41))
