// Inline assembly for what C cannot express: r0 = r7, with r7 never written.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
__attribute__((naked)) int sock_uninit_r7(void)
{
	asm volatile("r0 = r7;"
		     "exit;" ::: "memory");
}

char LICENSE[] SEC("license") = "GPL";
