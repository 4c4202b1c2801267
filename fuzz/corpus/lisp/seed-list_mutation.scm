;; list_mutation.scm — map and for-each whose procedure mutates the list
;; being walked: shortening it or making it improper is an error, not a
;; crash (the walk used to take the car of whatever the cdr had become);
;; making it circular is an error, not a walk without end.
(define (show . items) (for-each display items) (newline))
(define (catch thunk) (try thunk (lambda (message) message)))

(define l (list 1 2 3 4))
(show (catch (lambda () (map (lambda (x) (set-cdr! l 5) x) l))))
(define l (list 1 2 3 4))
(show (catch (lambda () (for-each (lambda (x) (set-cdr! (cdr l) (vector x)) x) l))))
;; Shortening it to a proper list is fine: the walk stops there.
(define l (list 1 2 3 4))
(show (map (lambda (x) (set-cdr! (cdr l) '()) (* x 10)) l))
;; Growing it: the new elements are walked too.
(define l (list 1 2))
(show (map (lambda (x) (when (= x 2) (set-cdr! (cdr l) (list 3))) (list x)) l))
;; Making it circular: an error, not a walk without end.
(define l (list 1 2 3 4))
(show (catch (lambda () (for-each (lambda (x) (set-cdr! (list-tail l 3) l)) l))))
(define l (list 1 2 3 4))
(show (catch (lambda () (map (lambda (x) (when (= x 3) (set-cdr! (list-tail l 3) (cdr l))) x) l))))
;; Cutting it behind the walk leaves the rest to walk.
(define l (list 1 2 3 4 5 6))
(show (map (lambda (x) (when (= x 3) (set-cdr! (cdr l) 7)) x) l))
(gc)
(show "still fine: " (map (lambda (x) (* x x)) (list 1 2 3)))
