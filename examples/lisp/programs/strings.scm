;; strings.scm — string building: string-append, number->string, substring,
;; string-length, symbols and characters; lots of short-lived strings.
;;   mulch-lisp strings.scm [count]
(define count (if (null? *args*) 300 (string->number (car *args*))))

(define (show . items) (for-each display items) (newline))

;; "item-1,item-2,...": grown piece by piece in chunks of 50, the chunks
;; joined at the end (appending to one ever longer string is quadratic).
(define (build-line k)
  (string-append "item-" (number->string k) ","))

(define (build-chunk from to)
  (let loop ((k from) (acc ""))
    (if (> k to) acc (loop (+ k 1) (string-append acc (build-line k))))))

(define (build n)
  (let loop ((from 1) (chunks '()))
    (if (> from n)
        (apply string-append (reverse chunks))
        (loop (+ from 50) (cons (build-chunk from (min n (+ from 49))) chunks)))))

(define text (build count))
(show "length: " (string-length text))
(show "head: " (substring text 0 28))
(show "tail: " (substring text (- (string-length text) 20) (string-length text)))

;; Count the commas character by character.
(define (count-char s c)
  (let loop ((i 0) (n 0))
    (if (= i (string-length s))
        n
        (loop (+ i 1) (if (char=? (string-ref s i) c) (+ n 1) n)))))
(show "commas: " (count-char text #\,))

;; Reversing words: string->list, list->string, symbols.
(define (string-reverse s) (list->string (reverse (string->list s))))
(show (string-reverse "stressed") " " (string-reverse "drawer"))
(show (symbol->string 'hello) " " (string->symbol "world") " "
      (eq? (string->symbol "abc") 'abc))
(show (string<? "apple" "banana") " " (string=? "x" "x") " " (string->number "1234"))

;; Many rounds of throw-away strings.
(define (churn rounds)
  (let loop ((i 0) (total 0))
    (if (= i rounds)
        total
        (loop (+ i 1) (+ total (string-length (string-append (number->string i) "-" (build-line i))))))))
(show "churn: " (churn (* count 10)))
