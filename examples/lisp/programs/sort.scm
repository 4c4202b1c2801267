;; sort.scm — merge sort of a list of pseudo-random fixnums (a linear
;; congruential generator, so the output is fixed), and an insertion sort
;; of a vector.   mulch-lisp sort.scm [count]
(define count (if (null? *args*) 500 (string->number (car *args*))))

(define (show . items) (for-each display items) (newline))

(define (random-list n seed)
  (let loop ((i 0) (x seed) (acc '()))
    (if (= i n)
        acc
        (let ((next (modulo (+ (* x 1103515245) 12345) 2147483648)))
          (loop (+ i 1) next (cons (modulo next 100000) acc))))))

;; Splits by alternation, merges tail-recursively into a reversed
;; accumulator: no deep recursion on long lists.
(define (split lst)
  (let loop ((lst lst) (a '()) (b '()))
    (if (null? lst) (cons a b) (loop (cdr lst) b (cons (car lst) a)))))

(define (merge a b less?)
  (let loop ((a a) (b b) (acc '()))
    (cond ((null? a) (append (reverse acc) b))
          ((null? b) (append (reverse acc) a))
          ((less? (car b) (car a)) (loop a (cdr b) (cons (car b) acc)))
          (else (loop (cdr a) b (cons (car a) acc))))))

(define (merge-sort lst less?)
  (if (or (null? lst) (null? (cdr lst)))
      lst
      (let ((halves (split lst)))
        (merge (merge-sort (car halves) less?) (merge-sort (cdr halves) less?) less?))))

(define (sorted? lst less?)
  (or (null? lst) (null? (cdr lst))
      (and (not (less? (cadr lst) (car lst))) (sorted? (cdr lst) less?))))

(define (sum lst) (apply + lst))

(define data (random-list count 42))
(define sorted (merge-sort data <))
(show "count: " (length sorted) ", sorted: " (sorted? sorted <) ", sum kept: " (= (sum data) (sum sorted)))
(define (take lst k) (if (= k 0) '() (cons (car lst) (take (cdr lst) (- k 1)))))
(show "first five: " (take sorted 5))
(show "descending head: " (list-ref (merge-sort data >) 0) " = max " (apply max data))

(define (vector-insertion-sort! v)
  (let outer ((i 1))
    (when (< i (vector-length v))
      (let ((x (vector-ref v i)))
        (let inner ((j (- i 1)))
          (if (and (>= j 0) (> (vector-ref v j) x))
              (begin (vector-set! v (+ j 1) (vector-ref v j)) (inner (- j 1)))
              (vector-set! v (+ j 1) x))))
      (outer (+ i 1)))))
(define v (list->vector (random-list 120 7)))
(vector-insertion-sort! v)
(show "vector sorted: " (sorted? (vector->list v) <) ", smallest three: "
      (vector-ref v 0) " " (vector-ref v 1) " " (vector-ref v 2))
(show "strings: " (merge-sort '("pear" "apple" "fig" "kiwi" "banana") string<?))
