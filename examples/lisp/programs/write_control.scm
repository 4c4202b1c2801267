;; write_control.scm — write prints a string's control bytes as \xH;
;; escapes, which read back as the same bytes. It printed them raw: a NUL
;; byte in a string written into an error message ended the message there
;; ("car: expected pair, got "x").
(define s (list->string (list #\a (integer->char 0) #\b (integer->char 1) #\return
                              (integer->char 127) #\newline #\tab #\" #\\)))
(write s)
(newline)
(display (string-length s))
(newline)
(display (equal? s "a\x0;b\x1;\x0d;\x7f;\n\t\"\\"))
(newline)
(try (lambda () (car "x\x0;y"))
     (lambda (message) (display message) (newline)))
(try (lambda () (error "irritants are written:" "m\x0;n" 'done))
     (lambda (message) (display message) (newline)))
;; The message is displayed: its NUL bytes print as \x0; there (displayed
;; raw into the C string of the message, "m\x0;n" was cut to "m"), and a
;; message that fills the buffer is cut, not overrun.
(try (lambda () (error "m\x0;n" 'done))
     (lambda (message) (display message) (newline)))
(try (lambda () (error (list "a\x0;b" (string->symbol "c\x0;d")) "x\x0;"))
     (lambda (message) (display message) (newline)))
(define nuls (list->string (map (lambda (i) (integer->char 0)) (vector->list (make-vector 150 0)))))
(try (lambda () (error nuls))
     (lambda (message) (display (string-length message)) (newline)))
