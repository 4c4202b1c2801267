;; write_symbols.scm — write prints a symbol whose name would not read back
;; as that symbol between bars, as R7RS does (|a b|, |12|, ||), with the
;; strings' escapes; display prints every name raw; the reader reads |...|
;; back to the same symbol. (write printed every name raw: a b, 12.)

(define (show-both name)
  (let ((s (string->symbol name)))
    (write s)
    (display "  ")
    (display s)
    (newline)))

(for-each show-both
          (list "a b" "" "." "12" "-3" "+12" "#foo" "'q" "|x" "(paren" "semi;colon"
                "quo\"te" "tab\there" "back\\slash |bar"))
;; names that read back plain stay plain
(for-each show-both (list "+" "-" "..." "a|b" "a\\b" "x1" "1+" "-x" "a'b" "plain"))

;; bar literals are the same symbols
(define (check literal name)
  (display (eq? literal (string->symbol name)))
  (newline))
(check '|a b| "a b")
(check '|| "")
(check '|12| "12")
(check '|plain| "plain")
(check '|back\\slash \|bar| "back\\slash |bar")
(check '|tab\x9;here| "tab\there")
(check '|two
lines| "two\nlines")
(write (string->symbol "nul\x0;byte"))   ; (display would print the byte itself)
(newline)
(write '(|x y| . |(|))
(newline)
(write (list 'quote (string->symbol "1")))
(newline)
;; in an error message too: the irritant is written
(try (lambda () (car (string->symbol "a b")))
     (lambda (message) (display message) (newline)))
;; an unbound variable's name is written whole: a NUL byte in it ended the
;; message ("unbound variable: nul")
(try (lambda () |nul\x0;var|)
     (lambda (message) (display message) (newline)))
(try (lambda () (set! |nul\x0;set| 1))
     (lambda (message) (display message) (newline)))
;; so is a procedure's name in an arity error ("g: expected ...")
(define |g\x0;h| (lambda () 1))
(try (lambda () (|g\x0;h| 1))
     (lambda (message) (display message) (newline)))
;; and a procedure prints its name as write prints the symbol, by display
;; too (printed raw, |f g| read as two words and a NUL byte ended the
;; message: "got #<procedure g")
(write |g\x0;h|)
(newline)
(define (|f g| x) x)
(display |f g|)
(newline)
(try (lambda () (car |g\x0;h|))
     (lambda (message) (display message) (newline)))
