;; binary_trees.scm — the Benchmarks Game's binary-trees: many short-lived
;; trees of pairs and one long-lived tree.   mulch-lisp binary_trees.scm [depth]
(define max-depth
  (let ((d (if (null? *args*) 8 (string->number (car *args*)))))
    (if (< d 6) 6 d)))
(define min-depth 4)
(define (expt2 k) (if (= k 0) 1 (* 2 (expt2 (- k 1)))))

(define (make-tree depth)
  (if (= depth 0)
      (cons '() '())
      (cons (make-tree (- depth 1)) (make-tree (- depth 1)))))

(define (check tree)
  (if (null? (car tree))
      1
      (+ 1 (check (car tree)) (check (cdr tree)))))

(define (show . items) (for-each display items) (newline))

(let ((stretch (+ max-depth 1)))
  (show "stretch tree of depth " stretch "\t check: " (check (make-tree stretch))))

(define long-lived (make-tree max-depth))

(let loop ((depth min-depth))
  (when (<= depth max-depth)
    (let ((iterations (expt2 (+ (- max-depth depth) min-depth))))
      (let sum ((i 0) (total 0))
        (if (< i iterations)
            (sum (+ i 1) (+ total (check (make-tree depth))))
            (show iterations "\t trees of depth " depth "\t check: " total))))
    (loop (+ depth 2))))

(show "long lived tree of depth " max-depth "\t check: " (check long-lived))
