/* A syscall tracer on raw_tp/sys_enter (args[0] = struct pt_regs *, args[1] = syscall id) that
 * exercises the tracing helpers and both event channels:
 *   ring buffer: bpf_ringbuf_output, reserve + submit, reserve + discard (odd ids), a reserve
 *   larger than the ring (NULL), bpf_ringbuf_query for the ring size and unread bytes;
 *   perf buffer: bpf_perf_event_output on the current CPU;
 *   bpf_printk, bpf_loop with a callback, bpf_probe_read_kernel of the context (succeeds) and of
 *   an unmapped address (-EFAULT, destination zeroed), bpf_probe_read_user of NULL (-EFAULT);
 *   clocks, prandom, CPU id, pid/tgid and comm, stored for plausibility checks.
 * Records carry only values that are the same on every run of the same input (no times, no
 * pids), so their bytes can be compared with the kernel's. */
#include "common.h"

enum { EV_OUTPUT = 1, EV_SUBMIT = 2, EV_DISCARD = 3, EV_PERF = 4 };

struct event {
	__u32 kind;
	__u32 seq;
	__u64 id;
	__u64 arg0;
	__u64 loop_sum;
};

struct result {
	__s64 rc_output, rc_perf, rc_printk, rc_loop, rc_probe_ctx, rc_probe_bad, rc_probe_user, rc_comm;
	__u64 probe_ctx_val, probe_bad_val, probe_user_val;
	__u64 ring_size, avail_data, big_reserve_null;
	__u64 loop_sum;
	__u32 cpu;
	/* Not compared from here on: different on every run or machine. */
	__u32 prandom;
	__u64 t_mono1, t_boot, t_mono2, pid_tgid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct result);
} results SEC(".maps");

__u32 seq;

struct loop_ctx {
	__u64 base;
	__u64 sum;
};

static long sum_squares(__u32 i, void *data)
{
	struct loop_ctx *lc = data;

	lc->sum += (__u64)i * i + lc->base;
	return lc->sum > 1000; /* 1 stops the loop early */
}

SEC("raw_tp/sys_enter")
int trace_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 n = seq++;
	__u32 slot = n % 8;
	struct result *r = bpf_map_lookup_elem(&results, &slot);
	__u64 id = ctx->args[1];

	if (!r)
		return 0;
	r->t_mono1 = bpf_ktime_get_ns();
	r->t_boot = bpf_ktime_get_boot_ns();
	r->prandom = bpf_get_prandom_u32();
	r->cpu = bpf_get_smp_processor_id();
	r->pid_tgid = bpf_get_current_pid_tgid();
	r->rc_comm = bpf_get_current_comm(r->comm, sizeof(r->comm));

	struct loop_ctx lc = { .base = id };
	r->rc_loop = bpf_loop(id & 15, sum_squares, &lc, 0);
	r->loop_sum = lc.sum;

	r->rc_probe_ctx = bpf_probe_read_kernel(&r->probe_ctx_val, 8, &ctx->args[0]);
	r->probe_bad_val = 0xdeadbeef;
	r->rc_probe_bad = bpf_probe_read_kernel(&r->probe_bad_val, 8, (void *)16);
	r->probe_user_val = 0xdeadbeef;
	r->rc_probe_user = bpf_probe_read_user(&r->probe_user_val, 8, (void *)0);

	struct event ev = { .kind = EV_OUTPUT, .seq = n, .id = id, .arg0 = ctx->args[0], .loop_sum = lc.sum };
	r->rc_output = bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);

	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		*e = ev;
		e->kind = EV_SUBMIT;
		bpf_ringbuf_submit(e, 0);
	}
	if (id & 1) {
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			*e = ev;
			e->kind = EV_DISCARD;
			bpf_ringbuf_discard(e, 0);
		}
	}
	void *big = bpf_ringbuf_reserve(&events, 8192, 0);
	r->big_reserve_null = big == 0;
	if (big)
		bpf_ringbuf_discard(big, 0);
	r->ring_size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	r->avail_data = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	ev.kind = EV_PERF;
	r->rc_perf = bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	r->rc_printk = bpf_printk("sys_enter id=%llu seq=%u sum=%llu", id, n, lc.sum);
	r->t_mono2 = bpf_ktime_get_ns();
	return n;
}

char _license[] SEC("license") = "GPL";
