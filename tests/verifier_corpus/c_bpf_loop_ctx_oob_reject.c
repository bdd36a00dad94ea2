// The callback writes past the 8-byte stack object it was given.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static long oob_callback(__u64 index, void *data)
{
	((__u64 *)data)[1] = index;   /* data points at one __u64 */
	return 0;
}

SEC("xdp")
int xdp_loop_oob(struct xdp_md *ctx)
{
	__u64 sum = 0;

	bpf_loop(8, oob_callback, &sum, 0);
	return sum ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
