/* A tail-call pipeline: the entry program classifies the frame and jumps to a per-protocol
 * stage through a PROG_ARRAY whose slots are filled at load time from the ELF
 * (__array(values, ...) with initial values; libbpf and bpfmc's loader both do this).
 * Slot 3 is left empty: a tail call to it falls through. Slot 4 holds a program that tail-calls
 * itself: the kernel allows 33 tail calls in one run (MAX_TAIL_CALL_CNT), so it runs 33 times
 * and then falls through to its own return. */
#include "common.h"

enum { SLOT_IPV4, SLOT_IPV6, SLOT_OTHER, SLOT_EMPTY, SLOT_LOOP, SLOTS };

__u64 stage_runs[SLOTS];
__u32 loop_depth;
__u32 last_depth;

int stage_ipv4(struct xdp_md *ctx);
int stage_ipv6(struct xdp_md *ctx);
int stage_other(struct xdp_md *ctx);
int stage_loop(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__array(values, int(struct xdp_md *));
} stages SEC(".maps") = {
	.values = {
		[SLOT_IPV4] = (void *)&stage_ipv4,
		[SLOT_IPV6] = (void *)&stage_ipv6,
		[SLOT_OTHER] = (void *)&stage_other,
		[SLOT_LOOP] = (void *)&stage_loop,
	},
};

SEC("xdp")
int xdp_dispatch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_dest[0] == 0xff) {
		/* Broadcast: the empty slot, then the recursion test. */
		bpf_tail_call(ctx, &stages, SLOT_EMPTY);
		loop_depth = 0;
		bpf_tail_call(ctx, &stages, SLOT_LOOP);
		return XDP_ABORTED;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		bpf_tail_call(ctx, &stages, SLOT_IPV4);
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		bpf_tail_call(ctx, &stages, SLOT_IPV6);
	else
		bpf_tail_call(ctx, &stages, SLOT_OTHER);
	return XDP_ABORTED; /* not reached while the slots are filled */
}

SEC("xdp")
int stage_ipv4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);

	stage_runs[SLOT_IPV4]++;
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	return ip->ttl <= 1 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int stage_ipv6(struct xdp_md *ctx)
{
	stage_runs[SLOT_IPV6]++;
	return XDP_PASS;
}

SEC("xdp")
int stage_other(struct xdp_md *ctx)
{
	stage_runs[SLOT_OTHER]++;
	return XDP_TX;
}

SEC("xdp")
int stage_loop(struct xdp_md *ctx)
{
	stage_runs[SLOT_LOOP]++;
	last_depth = ++loop_depth;
	bpf_tail_call(ctx, &stages, SLOT_LOOP);
	/* Reached once the chain limit refuses the next call. */
	return XDP_PASS + 100 * loop_depth;
}

char _license[] SEC("license") = "GPL";
