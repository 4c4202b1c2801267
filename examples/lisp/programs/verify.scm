;; verify.scm — (gc-verify) runs mulch's heap checks on the interpreter's
;; own heap: gc_verify (every invariant, every traced slot) and
;; gc_verify_untraced (a word of an object that holds another object but
;; that its trace function does not name: a forgotten field). Every kind
;; of value is live while they run, before and after collections, so a
;; trace function of the interpreter that forgot a field would show here.
;; Mulch backend only (Boehm has no such checks: it returns ()).
(define (show . items) (for-each display items) (newline))

(define (make-counter)
  (let ((n 0))
    (lambda () (set! n (+ n 1)) n)))
(define counter (make-counter))
(counter)
(define table (make-vector 50 '()))
(let loop ((i 0))
  (if (< i 50)
      (begin
        (vector-set! table i (list i (number->string i) (string->symbol (string-append "k" (number->string i)))))
        (loop (+ i 1)))))
(define big (make-vector 700 table))           ; a wide object: more than 512 slots
(define (repeat s n) (if (= n 0) "" (string-append s (repeat s (- n 1)))))
(define text (repeat "0123456789" 500))        ; a large string
(define key (list 'key))
(define tag (make-ephemeron key (list "tag of" key)))
(define out (open-output-file "verify-test.txt"))
(display "kept open while the heap is checked" out)
(define nested
  (let ((a 1) (b (list 2 3)))
    (lambda (c) (list a b c counter table))))

(show "before any (gc): " (gc-verify))
(gc)
(show "after (gc): " (gc-verify))
(define (churn n acc) (if (= n 0) (length acc) (churn (- n 1) (cons (make-vector 3 n) acc))))
(churn 20000 '())
(show "after allocation: " (gc-verify))
(close-port out)
(set! big #f)
(gc)
(show "after dropping some: " (gc-verify))
(show "the values still hold: " (counter) " " (car (vector-ref table 49)) " " (car (ephemeron-datum tag))
      " " (string-length text) " " (length (nested 4)))
