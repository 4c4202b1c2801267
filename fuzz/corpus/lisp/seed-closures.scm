;; closures.scm — closure-heavy code: counters with private state, function
;; composition, currying, Church numerals and lazy streams of thunks.
;;   mulch-lisp closures.scm [count]
(define count (if (null? *args*) 2000 (string->number (car *args*))))

(define (show . items) (for-each display items) (newline))

(define (make-counter)
  (let ((n 0))
    (lambda () (set! n (+ n 1)) n)))
(define c1 (make-counter))
(define c2 (make-counter))
(c1) (c1) (c2)
(show "counters: " (c1) " " (c2))

(define (compose . fs)
  (if (null? fs)
      (lambda (x) x)
      (lambda (x) ((car fs) ((apply compose (cdr fs)) x)))))
(define (curry f x) (lambda (y) (f x y)))
(define add1 (curry + 1))
(define double (curry * 2))
(show "compose: " ((compose add1 double add1) 5) " " (map (compose double double) '(1 2 3)))

;; Church numerals: a number is a function applying f n times.
(define zero (lambda (f) (lambda (x) x)))
(define (succ n) (lambda (f) (lambda (x) (f ((n f) x)))))
(define (plus a b) (lambda (f) (lambda (x) ((a f) ((b f) x)))))
(define (church->int n) ((n (lambda (k) (+ k 1))) 0))
(define (int->church k) (if (= k 0) zero (succ (int->church (- k 1)))))
(show "church: " (church->int (plus (int->church 7) (int->church 35))))

;; Streams: (head . thunk).
(define (integers-from n) (cons n (lambda () (integers-from (+ n 1)))))
(define (stream-tail s) ((cdr s)))
(define (stream-filter keep? s)
  (if (keep? (car s))
      (cons (car s) (lambda () (stream-filter keep? (stream-tail s))))
      (stream-filter keep? (stream-tail s))))
(define (stream-take s k)
  (if (= k 0) '() (cons (car s) (stream-take (stream-tail s) (- k 1)))))
(define (sieve s)
  (cons (car s)
        (lambda () (sieve (stream-filter (lambda (x) (not (= 0 (modulo x (car s)))))
                                         (stream-tail s))))))
(show "primes: " (stream-take (sieve (integers-from 2)) 15))

;; Many short-lived closures: an accumulator folded through closures.
(define (make-adder k) (lambda (x) (+ x k)))
(define (churn n)
  (let loop ((i 0) (acc 0))
    (if (= i n)
        acc
        (loop (+ i 1) ((make-adder i) ((compose (make-adder 1) (make-adder -1)) acc))))))
(show "churn: " (churn count))

;; A closure-based object with a message dispatcher.
(define (make-account balance)
  (define (withdraw amount)
    (if (> amount balance)
        (error "insufficient funds:" amount)
        (begin (set! balance (- balance amount)) balance)))
  (define (deposit amount) (set! balance (+ balance amount)) balance)
  (lambda (message . args)
    (cond ((eq? message 'withdraw) (apply withdraw args))
          ((eq? message 'deposit) (apply deposit args))
          ((eq? message 'balance) balance)
          (else (error "unknown request" message)))))
(define acc (make-account 100))
(acc 'deposit 50)
(acc 'withdraw 30)
(show "balance: " (acc 'balance))
(show "overdraw: " (try (lambda () (acc 'withdraw 500)) (lambda (msg) msg)))
