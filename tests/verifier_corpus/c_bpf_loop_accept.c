// bpf_loop with a static callback that returns 0 (continue) or 1 (stop).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct loop_ctx { __u64 sum; __u32 limit; };

static long add_index(__u64 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += index;
	return c->sum > c->limit ? 1 : 0;
}

SEC("xdp")
int xdp_loop(struct xdp_md *ctx)
{
	struct loop_ctx c = { .sum = 0, .limit = ctx->ingress_ifindex };

	bpf_loop(64, add_index, &c, 0);
	return c.sum & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
