// bpf_loop callbacks must return 0 or 1; this one returns 2.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static long bad_callback(__u64 index, void *data)
{
	*(__u64 *)data += index;
	return 2;
}

SEC("xdp")
int xdp_loop_bad(struct xdp_md *ctx)
{
	__u64 sum = 0;

	bpf_loop(8, bad_callback, &sum, 0);
	return sum ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
