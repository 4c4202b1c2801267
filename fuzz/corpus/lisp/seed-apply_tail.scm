;; apply_tail.scm — (apply f ...) in tail position is a tail call (R7RS):
;; a loop through apply runs in constant stack, like a direct call.
(define (show . items) (for-each display items) (newline))

(define (count n) (if (= n 0) 'done (apply count (list (- n 1)))))
(show "count: " (count 100000))

;; leading arguments before the list, and an accumulator
(define (sum-to n acc) (if (= n 0) acc (apply sum-to (- n 1) (list (+ acc n)))))
(show "sum-to: " (sum-to 100000 0))

;; mutual recursion through apply
(define (ping n) (if (= n 0) 'ping (apply pong (list (- n 1)))))
(define (pong n) (if (= n 0) 'pong (apply ping (list (- n 1)))))
(show "ping-pong: " (ping 100001))

;; apply of primitives, and apply not in tail position
(show (apply + 1 2 '(3 4)) " " (apply list '()) " " (map (lambda (x) (apply + x '(1))) '(1 2 3)))
(show "nested: " (+ 1 (apply * '(2 3))))

;; errors still name apply
(show (try (lambda () (apply + 1 '(2 . 3))) (lambda (m) m)))
(show (try (lambda () (apply 5 '(1))) (lambda (m) m)))
