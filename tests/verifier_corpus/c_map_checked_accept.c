// The same lookup with a NULL check, inserting the key when absent.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

SEC("socket")
int sock_count(struct __sk_buff *skb)
{
	__u32 key = skb->protocol;
	__u64 one = 1, *v = bpf_map_lookup_elem(&seen, &key);

	if (v)
		*v += 1;
	else
		bpf_map_update_elem(&seen, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
