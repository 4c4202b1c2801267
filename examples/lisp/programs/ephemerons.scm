;; ephemerons.scm — data attached to objects without keeping them alive:
;; (make-ephemeron key datum) keeps datum only while key is reachable some
;; other way, even when datum refers back to key. A weak-keyed property
;; table is an alist of ephemerons. Mulch backend only: Boehm has no
;; ephemerons, and its conservative stack scan may keep a dropped key.
(define (make-node name) (list 'node name))

;; the property table: (put! obj value), (get obj), and (size) after
;; dropping the entries whose key died
(define table '())
(define (put! obj value) (set! table (cons (make-ephemeron obj value) table)))
(define (get obj)
  (let loop ((entries table))
    (cond ((null? entries) #f)
          ((eq? (ephemeron-key (car entries)) obj) (ephemeron-datum (car entries)))
          (else (loop (cdr entries))))))
(define (prune!)
  (let loop ((entries table) (kept '()))
    (cond ((null? entries) (set! table (reverse kept)))
          ((ephemeron-broken? (car entries)) (loop (cdr entries) kept))
          (else (loop (cdr entries) (cons (car entries) kept))))))
(define (size) (prune!) (length table))

(define alice (make-node "alice"))
(define bob (make-node "bob"))
(put! alice "likes tea")
(put! bob (list "points back to" bob))          ; the datum holds its key
(put! (make-node "carol") "dropped at once")
(let ((dave (make-node "dave")))
  (put! dave (list "points back to" dave)))      ; dropped, and its datum holds it

(display "entries made: ") (display (length table)) (newline)
(gc)
(display "after (gc): ") (display (size)) (newline)
(display "alice: ") (display (get alice)) (newline)
(display "bob's datum is bob's: ") (display (eq? (cadr (get bob)) bob)) (newline)

(set! bob #f)
(gc)
(display "bob dropped, after (gc): ") (display (size)) (newline)

;; a chain: each datum holds the next key; only the first key is kept
(define (filter-out-broken l)
  (cond ((null? l) '())
        ((ephemeron-broken? (car l)) (filter-out-broken (cdr l)))
        (else (cons (car l) (filter-out-broken (cdr l))))))
(define (chain n)
  (let loop ((i n) (next (make-node 'end)) (links '()))
    (if (= i 0)
        (cons next links)
        (let ((key (make-node i)))
          (loop (- i 1) key (cons (make-ephemeron key next) links))))))
(define links (chain 50))
(define first-key (car links))
(set! links (cdr links))
(gc)
(display "chain of 50, first key kept: ")
(display (length (filter-out-broken links))) (newline)
(set! first-key #f)
(gc)
(display "first key dropped: ")
(display (length (filter-out-broken links))) (newline)
(display "ephemeron? ") (display (ephemeron? (car links))) (display " ") (display (ephemeron? alice)) (newline)
(display (car links)) (newline)
(display "datum of a broken one: ") (display (ephemeron-datum (car links))) (newline)
(make-ephemeron 5 'five)
