;; read.scm — (read port): one datum at a time from an input port, the eof
;; object at the end; a datum may span lines, and read-line after read
;; gets the rest of the datum's line. Data written with write read back
;; equal. (There was no read: a program could only read lines.)
(define out (open-output-file "read-data.txt"))
(write-string "(1 2 (3 . 4)) \"a string\" sym #\\x #(1 \"two\") -17\n" out)
(write-string "'quoted ; a comment\n(multi\n  \"line ) \\\" string\"\n  list) |a b|\n" out)
(write-string "  ; only a comment\n\n" out)
(close-port out)

(define in (open-input-file "read-data.txt"))
(let loop ((datum (read in)))
  (unless (eof-object? datum)
    (write datum)
    (newline)
    (loop (read in))))
(display (eof-object? (read in)))   ; and again at the end
(newline)
(close-port in)

;; read, then read-line: the rest of the line
(define out (open-output-file "read-mixed.txt"))
(write-string "12 the rest\n(a\n b) tail\nlast\n" out)
(close-port out)
(define in (open-input-file "read-mixed.txt"))
(write (list (read in) (read-line in) (read in) (read-line in) (read-line in) (read in)))
(newline)

;; round trip: what write prints, read reads back
(define values (list "tab\there" (string->symbol "a b") #\space '(1 . (2 3)) #(x "y")
                     (list->string (list #\a (integer->char 0) #\b))))
(define out (open-output-file "read-round.txt"))
(for-each (lambda (v) (write v out) (newline out)) values)
(close-port out)
(define in (open-input-file "read-round.txt"))
(display (map (lambda (v) (equal? v (read in))) values))
(newline)

;; errors: reported with the line of the read call
(define (show-error thunk)
  (try thunk (lambda (message) (display message) (newline))))
(define out (open-output-file "read-bad.txt"))
(write-string "(1 2\n" out)
(close-port out)
(show-error (lambda () (read (open-input-file "read-bad.txt"))))
(show-error (lambda () (read (current-output-port))))
(display (eof-object? (read in)))   ; at its end: no error
(newline)
(close-port in)
(show-error (lambda () (read in)))
;; text that ends in #\ (a character without its byte) is an error: the
;; reader took the byte after the text for the character's name (here
;; past the end of read's 4096-byte buffer)
(define out (open-output-file "read-hash.txt"))
(write-string (list->string (append (vector->list (make-vector 4094 #\space)) (list #\# #\\))) out)
(close-port out)
(show-error (lambda () (read (open-input-file "read-hash.txt"))))
