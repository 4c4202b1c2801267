;; circular_lists.scm — list primitives given a list made circular by
;; set-cdr! report an error (caught by try) instead of looping forever;
;; length and list? used to walk the cycle without end, and so did every
;; primitive that measures its list first (append, reverse, apply, map,
;; list->vector, list->string, let's bindings) and memq/member/assq/assoc
;; when the item is not there.
(define (show . items) (for-each display items) (newline))
;; (The messages of type errors show the list, cut at their buffer's size:
;; only that there was one is shown here.)
(define (catch thunk) (try thunk (lambda (message) "error")))
(define (message-of thunk) (try thunk (lambda (message) message)))

(define (circular . items)
  (let ((l (apply list items)))
    (set-cdr! (list-tail l (- (length l) 1)) l)
    l))
(define ring (circular 1 2 3))
(define ring1 (circular 'a))
(define lasso (cons 0 (cons 0 (circular 1 2 3 4 5))))

(show "list?: " (list? ring) " " (list? ring1) " " (list? lasso) " " (list? '(1 2 3)))
(show "length: " (catch (lambda () (length ring))) " " (catch (lambda () (length lasso))))
(show "append: " (catch (lambda () (append ring '(4)))))
(show "reverse: " (catch (lambda () (reverse ring1))))
(show "apply: " (catch (lambda () (apply + lasso))))
(show "map: " (catch (lambda () (map (lambda (x) x) ring))))
(show "for-each: " (catch (lambda () (for-each (lambda (x) x) ring))))
(show "list->vector: " (catch (lambda () (list->vector ring))))
(show "list->string: " (catch (lambda () (list->string (circular #\a #\b)))))
(show "memq: " (message-of (lambda () (memq 9 ring))) " " (car (memq 3 ring)))
(show "member: " (message-of (lambda () (member "x" lasso))) " " (car (member 5 lasso)))
(show "assq: " (message-of (lambda () (assq 'k (circular '(a . 1) '(b . 2))))))
(show "assoc: " (message-of (lambda () (assoc "k" (circular '("a" . 1))))) " "
      (cdr (assoc "b" (circular '("a" . 1) '("b" . 2)))))
(show "lengths still fine: " (length '()) " " (length '(1)) " " (length '(1 2 3 4 5 6 7)))
;; list-ref and list-tail may index a circular list anywhere: a huge index
;; is reduced modulo the cycle instead of walking 10^12 links.
(define (elements l n) (let loop ((i (- n 1)) (acc '())) (if (< i 0) acc (loop (- i 1) (cons (list-ref l i) acc)))))
(show "list-ref: " (elements ring 7) " " (elements lasso 12))
(show "huge indices: " (list-ref ring 1000000000000) " " (list-ref lasso 1000000000000) " "
      (car (list-tail lasso 4611686018427387903)) " " (list-ref ring1 77777777777))
