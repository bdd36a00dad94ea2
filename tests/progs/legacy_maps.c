/* A map defined the pre-BTF way: struct bpf_map_def in SEC("maps"), as old samples and iproute2
 * programs do. libbpf 1.0 dropped support for it ("legacy map definitions in 'maps' section are
 * not supported by libbpf v1.0+"), so the kernel side cannot load this object through libbpf;
 * bpfmc's loader still accepts it. Socket filter: counts frames per EtherType class. */
#include "common.h"

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") type_counts = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

SEC("socket")
int legacy_count(struct __sk_buff *skb)
{
	__u32 key = skb->protocol == bpf_htons(ETH_P_IP) ? 0 : skb->protocol == bpf_htons(ETH_P_IPV6) ? 1
		  : skb->protocol == bpf_htons(ETH_P_ARP) ? 2 : 3;
	__u64 *v = bpf_map_lookup_elem(&type_counts, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	return skb->len;
}

char _license[] SEC("license") = "GPL";
