// The requantising 8x48 avx512vnni micro-kernel (em_qukr_rq_u8s8_avx512vnni_8x48) in a loop over
// 16 L1/L2-resident panels of one weight block: cycles per call (thread CPU time at the clock
// given by the in-register vpdpbusd loop, 3.69 GHz on the session-11 Zen 4 VM: edit CLK), with
// and without a residual; the pack path (nocl), z_out as given (0: ReLU form 2). Not a test.
//   clang -O3 -fno-strict-aliasing -ICShim/include -ICShim bench/rq_kernel_bench.c \
//         CShim/x86/qgemm_avx512vnni.c -o /tmp/rqk
//   /tmp/rqk K RES ITERS [Z_OUT]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#define CLK 3.69e9
static double tc(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#include "em_qinternal.h"
void em_qukr_rq_u8s8_avx512vnni_8x48(int kp, const void *wblk, const uint8_t *panel, const int32_t *acc, const em_qrq_tile *t);
int main(int argc,char**argv){
  int K=atoi(argv[1]), res=atoi(argv[2]); long iters=atol(argv[3]); int zout=argc>4?atoi(argv[4]):0;
  int NP=16; // panels
  uint8_t*panel=aligned_alloc(64,(size_t)K*48*NP); int8_t*w=aligned_alloc(64,(size_t)K*8*4);
  for(size_t i=0;i<(size_t)K*48*NP;i++)panel[i]=(uint8_t)(i*7+3);
  for(int i=0;i<K*8;i++)w[i]=(int8_t)((i*13)%200-100);
  int32_t terms[8]={1,2,3,4,5,6,7,8}; float mults[8]; for(int i=0;i<8;i++)mults[i]=0.0005f;
  uint8_t*rbuf=aligned_alloc(64,8*48*NP*2),*dst=aligned_alloc(64,8*48*NP*2); memset(rbuf,77,8*48*NP*2);
  em_qrq_tile t={terms,mults,zout,zout,NULL,48*NP,90,0.7f,dst,48*NP,8,48,1};
  unsigned long long s=0; double best=1e9; for(int rep=0;rep<5;rep++){double t0=tc();
  for(long it=0;it<iters;it++) for(int p=0;p<NP;p++){ t.res=res?rbuf+48*p:NULL; t.dst=dst+48*p;
     em_qukr_rq_u8s8_avx512vnni_8x48(K,w,panel+(size_t)p*K*48,NULL,&t);}
  double d=tc()-t0; if(d<best)best=d;}
  printf("K %d res %d zout %d: %.1f cycles/call @CLK (%.2f ns); vpdpbusd %d\n",K,res,zout,best/(iters*NP)*CLK,best/(iters*NP)*1e9,K/4*24);
  for(int i=0;i<48*NP;i++)s+=dst[i]; printf("%llu\n",s);
}
