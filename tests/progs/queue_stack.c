/* A work scheduler fed by a raw tracepoint (args[0] = operation, args[1] = value): a FIFO of
 * pending jobs (QUEUE map) and a LIFO of free buffers (STACK map), both 4 deep, with every
 * helper's return code and every value that came out logged in an array, one slot per run.
 *   op 1: push value onto both (the fifth push fails with -E2BIG, unless
 *         args[1] has bit 63 set: then BPF_EXIST overwrites the oldest / evicts from the bottom);
 *   op 2: pop both (-ENOENT when empty);  op 3: peek both.
 * It also counts operations in a PERCPU_ARRAY and reads this CPU's count back both through the
 * ordinary lookup and through bpf_map_lookup_percpu_elem for CPU 0 and for a CPU that does not
 * exist (NULL). */
#include "common.h"

enum { OP_PUSH = 1, OP_POP = 2, OP_PEEK = 3 };

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 4);
	__type(value, __u64);
} jobs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 4);
	__type(value, __u64);
} free_bufs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} op_count SEC(".maps");

struct log_entry {
	__u64 op;
	__s64 rc_queue, rc_stack;
	__u64 val_queue, val_stack;
	__u64 this_cpu_count, cpu0_count, missing_cpu_null;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct log_entry);
} oplog SEC(".maps");

__u32 runs;

SEC("raw_tp/sched_work")
int sched_work(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 slot = runs++ % 16;
	struct log_entry *l = bpf_map_lookup_elem(&oplog, &slot);
	__u64 op = ctx->args[0], value = ctx->args[1];
	__u64 flags = value >> 63 ? BPF_EXIST : BPF_ANY;
	__u32 key = op & 3;

	if (!l)
		return -1;
	l->op = op;
	l->val_queue = l->val_stack = 0xdead;
	switch (op) {
	case OP_PUSH:
		l->rc_queue = bpf_map_push_elem(&jobs, &value, flags);
		l->rc_stack = bpf_map_push_elem(&free_bufs, &value, flags);
		break;
	case OP_POP:
		l->rc_queue = bpf_map_pop_elem(&jobs, &l->val_queue);
		l->rc_stack = bpf_map_pop_elem(&free_bufs, &l->val_stack);
		break;
	case OP_PEEK:
		l->rc_queue = bpf_map_peek_elem(&jobs, &l->val_queue);
		l->rc_stack = bpf_map_peek_elem(&free_bufs, &l->val_stack);
		break;
	default:
		return -2;
	}

	__u64 *mine = bpf_map_lookup_elem(&op_count, &key);
	if (mine) {
		*mine += 1;
		l->this_cpu_count = *mine;
	}
	__u64 *cpu0 = bpf_map_lookup_percpu_elem(&op_count, &key, 0);
	l->cpu0_count = cpu0 ? *cpu0 : 0xffff;
	l->missing_cpu_null = bpf_map_lookup_percpu_elem(&op_count, &key, 4096) == 0;
	return l->rc_queue;
}

char _license[] SEC("license") = "GPL";
