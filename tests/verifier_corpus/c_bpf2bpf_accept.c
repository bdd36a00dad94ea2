// A static noinline subprogram called with a pointer into the caller's stack.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __attribute__((noinline)) int fill(__u32 *buf, __u32 n)
{
	for (int i = 0; i < 8; i++)
		buf[i] = n + i;
	return buf[3];
}

SEC("tc")
int tc_calls(struct __sk_buff *skb)
{
	__u32 buf[8];

	return fill(buf, skb->len) & 1;
}

char LICENSE[] SEC("license") = "GPL";
