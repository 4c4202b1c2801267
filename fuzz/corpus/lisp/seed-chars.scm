;; chars.scm — character literals and how write prints them: R7RS's names
;; (#\null #\alarm #\backspace #\tab #\newline #\return #\escape #\space
;; #\delete), #\xHH for a byte (hex, one or two digits), and write prints
;; every control or non-ASCII byte in one of those forms, which read back
;; as the same character. (write printed control bytes raw, which did not
;; read back, and the reader knew only space, newline and tab.)

(define (show . xs) (for-each display xs) (newline))

;; the names and hex literals are the bytes they say
(define (check literal code)
  (if (not (= (char->integer literal) code))
      (show "wrong: " literal " is " (char->integer literal) ", want " code)))
(check #\null 0) (check #\alarm 7) (check #\backspace 8) (check #\tab 9)
(check #\newline 10) (check #\return 13) (check #\escape 27) (check #\space 32)
(check #\delete 127) (check #\x41 65) (check #\x7 7) (check #\xff 255) (check #\xFF 255)
(check #\x 120) (check #\a 97)
;; forms write prints below
(check #\x01 1) (check #\x0b 11) (check #\x1f 31) (check #\x80 128) (check #\xc8 200) (check #\( 40) (check #\; 59)
(show "literals checked")

;; every byte as write prints it, 16 to a line
(define (row i end)
  (if (< i end)
      (begin (write (integer->char i)) (display " ") (row (+ i 1) end))
      (newline)))
(define (rows r)
  (if (< r 256) (begin (row r (+ r 16)) (rows (+ r 16)))))
(rows 0)

;; display prints the byte itself
(display (list #\a #\x42 #\space #\c))
(newline)
