;; nqueens.scm — counts the solutions of the n-queens problem with lists:
;; every partial placement is a fresh list.   mulch-lisp nqueens.scm [n]
(define n (if (null? *args*) 6 (string->number (car *args*))))

(define (ok? row dist placed)
  (or (null? placed)
      (and (not (= (car placed) (+ row dist)))
           (not (= (car placed) (- row dist)))
           (not (= (car placed) row))
           (ok? row (+ dist 1) (cdr placed)))))

(define (range a b)
  (if (> a b) '() (cons a (range (+ a 1) b))))

;; All solutions: lists of rows, one per column.
(define (queens board-size)
  (let place ((k 0))
    (if (= k board-size)
        '(())
        (let ((rests (place (+ k 1))))
          (apply append
                 (map (lambda (rest)
                        (let loop ((rows (range 1 board-size)) (acc '()))
                          (cond ((null? rows) acc)
                                ((ok? (car rows) 1 rest)
                                 (loop (cdr rows) (cons (cons (car rows) rest) acc)))
                                (else (loop (cdr rows) acc)))))
                      rests))))))

(define (show . items) (for-each display items) (newline))

(let loop ((size 1))
  (when (<= size n)
    (show size " queens: " (length (queens size)) " solutions")
    (loop (+ size 1))))
(show "first solution for " n ": " (car (queens n)))
