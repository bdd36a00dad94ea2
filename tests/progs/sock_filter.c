/* A socket filter in the classic style: packet bytes are read with the legacy absolute and
 * indirect loads (BPF_LD_ABS / BPF_LD_IND, through LLVM's llvm.bpf.load.* intrinsics), which
 * convert to host byte order and end the program with return value 0 when the read is out of
 * bounds. Socket filters have no direct packet access: IPv6 headers come through
 * bpf_skb_load_bytes. Offsets are relative to the network header, as the kernel runs socket
 * filters (in a test run too: the Ethernet header has been pulled).
 * Keeps DNS (UDP port 53) whole, HTTP (TCP port 80) cut to 64 bytes, drops everything else;
 * counts verdicts in an array and records a few __sk_buff fields; cb[] is the only context a
 * socket filter may write. */
#include "common.h"

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

enum { C_SEEN, C_DNS4, C_HTTP, C_DNS6, C_DROP, C_LEN_SUM, C_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

struct sk_seen {
	__u32 len, pkt_type, protocol, ifindex, mark, priority, queue_mapping, hash;
	__u32 saddr;
	__u32 ip6_rc;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct sk_seen);
} seen SEC(".maps");

__u32 runs;

static __always_inline void bump(__u32 which, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&verdicts, &which);

	if (v)
		*v += by;
}

SEC("socket")
int sock_filter(struct __sk_buff *skb)
{
	__u32 slot = runs++ % 16;
	struct sk_seen *s = bpf_map_lookup_elem(&seen, &slot);

	if (!s)
		return 0;
	s->len = skb->len;
	s->pkt_type = skb->pkt_type;
	s->protocol = skb->protocol;
	s->ifindex = skb->ifindex;
	s->mark = skb->mark;
	s->priority = skb->priority;
	s->queue_mapping = skb->queue_mapping;
	s->hash = skb->hash;
	skb->cb[0] = slot;
	bump(C_SEEN, 1);
	bump(C_LEN_SUM, skb->len);

	/* The version nibble decides, as a classic filter would; an empty network layer makes
	 * this load fail and the program return 0 right here. */
	__u8 version = load_byte(skb, 0) >> 4;

	if (version == 4) {
		__u32 ihl = (load_byte(skb, 0) & 0xf) * 4;
		__u8 proto = load_byte(skb, 9);

		s->saddr = load_word(skb, 12);
		if (proto == IPPROTO_UDP && load_half(skb, ihl + 2) == 53) {
			bump(C_DNS4, 1);
			return skb->len;
		}
		if (proto == IPPROTO_TCP && load_half(skb, ihl + 2) == 80) {
			bump(C_HTTP, 1);
			return 64;
		}
	} else if (version == 6) {
		struct ipv6hdr ip6;
		struct udphdr uh;

		s->ip6_rc = bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6));
		if (s->ip6_rc == 0 && ip6.nexthdr == IPPROTO_UDP &&
		    bpf_skb_load_bytes(skb, sizeof(ip6), &uh, sizeof(uh)) == 0 && uh.dest == bpf_htons(53)) {
			bump(C_DNS6, 1);
			return skb->len;
		}
	}
	bump(C_DROP, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
