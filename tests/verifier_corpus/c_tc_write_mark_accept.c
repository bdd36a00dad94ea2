// tc: read the packet after a data_end check, write skb->mark and cb[0].
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	__u8 *data = (void *)(long)skb->data;
	__u8 *end = (void *)(long)skb->data_end;

	if (data + 14 > end)
		return TC_ACT_OK;
	skb->mark = data[13];
	skb->cb[0] = skb->len;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
