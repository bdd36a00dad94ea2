// Division by a value read from the packet, which may be zero: legal (the result is 0).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_div(struct xdp_md *ctx)
{
	__u8 *p = (void *)(long)ctx->data;
	__u8 *end = (void *)(long)ctx->data_end;
	__u32 q;

	if (p + 2 > end)
		return XDP_PASS;
	q = (__u32)p[0] / p[1];
	return q & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
