// A socket filter writing skb->mark (only cb[] is writable for socket filters).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int sock_mark(struct __sk_buff *skb)
{
	skb->mark = 1;
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
