// Caller and callee each use 256 bytes of stack: 512 together, at the limit.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define FILL(buf, n, seed) \
	_Pragma("unroll") for (int i = 0; i < (n); i++) (buf)[i] = (seed) + i

static __attribute__((noinline)) int inner(__u32 seed)
{
	volatile __u64 buf[32];

	FILL(buf, 32, seed);
	return buf[0] + buf[31];
}

SEC("tc")
int tc_stack_512(struct __sk_buff *skb)
{
	volatile __u64 buf[32];

	FILL(buf, 32, skb->len);
	return inner(buf[0] + buf[31]) & 1;
}

char LICENSE[] SEC("license") = "GPL";
