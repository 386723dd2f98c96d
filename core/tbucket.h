/* core/tbucket.h: a token bucket, the arithmetic admission control
 * (pool/admit.h) rates requests and rows with. Pure functions over a small
 * struct, one bucket per tenant per shard, touched by that shard only. */
#ifndef PGRING_TBUCKET_H
#define PGRING_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct tbucket {
	double tokens;      /* may go below zero: a debt charged after the fact (rows) */
	double rate;        /* tokens a second; 0: no limit */
	double burst;       /* the most tokens it holds */
	uint64_t last_us;   /* when tokens was last brought up to date */
};

/* A process-wide rate split over nshards: each shard's share. A shard's burst
 * is a tenth of a second of its share, at least one token, so that a share
 * below 10/s still lets a request through now and then. */
static inline double tbucket_share(double rate, int nshards)
{
	return nshards > 0 ? rate / nshards : rate;
}

static inline double tbucket_burst(double share)
{
	return share / 10 > 1 ? share / 10 : 1;
}

/* Start full. */
static inline void tbucket_init(struct tbucket *b, double rate, double burst, uint64_t now_us)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens = burst;
	b->last_us = now_us;
}

/* A new rate (reload): the tokens (and the debt) carry over, capped at the new burst. */
static inline void tbucket_set_rate(struct tbucket *b, double rate, double burst)
{
	b->rate = rate;
	b->burst = burst;
	if (b->tokens > burst)
		b->tokens = burst;
}

static inline void tbucket_refill(struct tbucket *b, uint64_t now_us)
{
	if (now_us > b->last_us) {
		b->tokens += (double)(now_us - b->last_us) * b->rate / 1e6;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
	}
	b->last_us = now_us;
}

/* Take n tokens if there are that many; false (nothing taken) if not. */
static inline bool tbucket_take(struct tbucket *b, double n, uint64_t now_us)
{
	if (b->rate <= 0)
		return true;
	tbucket_refill(b, now_us);
	if (b->tokens < n)
		return false;
	b->tokens -= n;
	return true;
}

/* Is there at least n (n = 0: is the bucket out of debt)? Nothing taken. */
static inline bool tbucket_has(struct tbucket *b, double n, uint64_t now_us)
{
	if (b->rate <= 0)
		return true;
	tbucket_refill(b, now_us);
	return n > 0 ? b->tokens >= n : b->tokens > 0;
}

/* Charge n whatever there is: the bucket may go into debt, which later
 * requests wait out. */
static inline void tbucket_charge(struct tbucket *b, double n, uint64_t now_us)
{
	if (b->rate <= 0)
		return;
	tbucket_refill(b, now_us);
	b->tokens -= n;
}

/* Microseconds until tbucket_has(b, n) would be true (0: now). */
static inline uint64_t tbucket_wait_us(const struct tbucket *b, double n, uint64_t now_us)
{
	if (b->rate <= 0)
		return 0;
	double tokens = b->tokens;
	if (now_us > b->last_us)
		tokens += (double)(now_us - b->last_us) * b->rate / 1e6;
	double need = n > 0 ? n : 1e-6;   /* out of debt: just above zero */
	if (tokens >= need)
		return 0;
	return (uint64_t)((need - tokens) * 1e6 / b->rate) + 1;
}

#endif
