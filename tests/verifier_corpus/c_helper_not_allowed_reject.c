// bpf_skb_load_bytes is not available to XDP programs.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_wrong_helper(struct xdp_md *ctx)
{
	__u8 buf[4];

	if (bpf_skb_load_bytes(ctx, 0, buf, sizeof(buf)) < 0)
		return XDP_PASS;
	return buf[0] == 0xff ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
