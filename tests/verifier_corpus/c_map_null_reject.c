// A hash map lookup used without a NULL check.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

SEC("socket")
int sock_count_nocheck(struct __sk_buff *skb)
{
	__u32 key = skb->protocol;
	__u64 *v = bpf_map_lookup_elem(&seen, &key);

	*v += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
