/* core/list.h: the one intrusive list type: a circular doubly linked list
 * with its head as a sentinel. An object is on a list through a struct list
 * member; a member that is on no list points at itself, so removal is safe to
 * repeat and membership can be tested. Nothing here allocates. */
#ifndef PGRING_LIST_H
#define PGRING_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
	struct list *next, *prev;
};

#define LIST_INIT(name) { &(name), &(name) }

static inline void list_init(struct list *l) { l->next = l->prev = l; }
static inline bool list_empty(const struct list *head) { return head->next == head; }
/* For a member: is it on some list? (Only for members kept initialised.) */
static inline bool list_linked(const struct list *n) { return n->next != n; }

static inline void list__insert(struct list *n, struct list *prev, struct list *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

static inline void list_append(struct list *head, struct list *n) { list__insert(n, head->prev, head); }
static inline void list_prepend(struct list *head, struct list *n) { list__insert(n, head, head->next); }

static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

#define list_entry(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
/* The first or last object on the list, or NULL. */
#define list_first(head, type, member) (list_empty(head) ? NULL : list_entry((head)->next, type, member))
#define list_last(head, type, member) (list_empty(head) ? NULL : list_entry((head)->prev, type, member))
/* The object after obj, or NULL at the end. */
#define list_next(head, obj, member)                                                                  \
	((obj)->member.next == (head) ? NULL : list_entry((obj)->member.next, __typeof__(*(obj)), member))

/* Walk the objects of a list; the current one may be removed (not the next). */
#define list_for_each_safe(head, obj, tmp, member)                                                    \
	for ((obj) = list_first(head, __typeof__(*(obj)), member),                                    \
	    (tmp) = (obj) ? list_next(head, obj, member) : NULL;                                      \
	     (obj); (obj) = (tmp), (tmp) = (obj) ? list_next(head, obj, member) : NULL)

#endif
