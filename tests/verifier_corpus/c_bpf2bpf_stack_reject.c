// Caller and callee each use 320 bytes of stack: 640 together, more than 512.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define FILL(buf, n, seed) \
	_Pragma("unroll") for (int i = 0; i < (n); i++) (buf)[i] = (seed) + i

static __attribute__((noinline)) int inner(__u32 seed)
{
	volatile __u64 buf[40];

	FILL(buf, 40, seed);
	return buf[0] + buf[39];
}

SEC("tc")
int tc_deep_stack(struct __sk_buff *skb)
{
	volatile __u64 buf[40];

	FILL(buf, 40, skb->len);
	return inner(buf[0] + buf[39]) & 1;
}

char LICENSE[] SEC("license") = "GPL";
