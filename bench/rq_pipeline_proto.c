// Prototype (not the library's kernel): can the requantisation epilogue of an 8x48 int8 tile be
// hidden under the multiply-accumulates on Zen 4? Three loops over 16 panels x one 8-row weight
// block, the same bytes out (checked: "same: 1 1"):
//   seq      8x48 tile: MACs, then the epilogue (as em_qukr_rq_u8s8_avx512vnni_8x48 does);
//   ovl      8x48 tile whose 24 int32 sums are stored to L1 and requantised inside the next
//            tile's MAC loop (the 24 zmm stores and reloads cost what the overlap saves);
//   ovl4x48  two 4x48 tiles per panel, software-pipelined: the previous tile's 12 sums stay in
//            registers (12 + 12 accumulators + 3 panel vectors + temporaries, weights as embedded
//            broadcasts) and one of its vectors is requantised per k group of the next tile.
// The epilogue here is simplified (vcvtdq2ps, vmulps, residual vpmovzxbd/vpsubd/vcvtdq2ps/vmulps/
// vaddps, vcvtps2dq, vpmovusdb, 16-byte stores) but has the kernel's float operations.
// Cycles at 3.69 GHz (the vpdpbusd loop's clock on the session-11 Zen 4 VM). Not a test.
//   clang -O3 bench/rq_pipeline_proto.c -o /tmp/ovp && /tmp/ovp K RES ITERS   (K 64, 128, 148, 256)
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#define T __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"),always_inline)) inline
#define TN __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"),noinline))
static double tc(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static T __m512i rq1(__m512i c, __m512 vm, const uint8_t *rr, __m512i vzr, __m512 vrm, int res){
  __m512 v=_mm512_mul_ps(_mm512_cvtepi32_ps(c),vm);
  if(res){__m512i q=_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)rr));
    v=_mm512_add_ps(v,_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q,vzr)),vrm));}
  return _mm512_cvtps_epi32(v);}
// store 16 lanes as bytes (simple vpmovdb with saturation-free form; prototype only)
static T void seq(int kp,const uint8_t*w,const uint8_t*panels,int np,const uint8_t*res,size_t ld,uint8_t*dst,int dores){
  const __m512 vm=_mm512_set1_ps(0.0005f),vrm=_mm512_set1_ps(0.7f);const __m512i vzr=_mm512_set1_epi32(90);
  for(int p=0;p<np;p++){const uint8_t*pp=panels+(size_t)p*kp*48;__m512i c[8][3];
    _Pragma("clang loop unroll(full)") for(int i=0;i<8;i++)c[i][0]=c[i][1]=c[i][2]=_mm512_setzero_si512();
    _Pragma("clang loop unroll(full)") for(int g=0;g<kp/4;g++){__m512i x0=_mm512_loadu_si512(pp+g*192),x1=_mm512_loadu_si512(pp+g*192+64),x2=_mm512_loadu_si512(pp+g*192+128);
      _Pragma("clang loop unroll(full)") for(int i=0;i<8;i++){__m512i wb=_mm512_set1_epi32(*(const int32_t*)(w+g*32+i*4));
        c[i][0]=_mm512_dpbusd_epi32(c[i][0],x0,wb);c[i][1]=_mm512_dpbusd_epi32(c[i][1],x1,wb);c[i][2]=_mm512_dpbusd_epi32(c[i][2],x2,wb);}}
    _Pragma("clang loop unroll(full)") for(int i=0;i<8;i++)for(int j=0;j<3;j++){__m512i y=rq1(c[i][j],vm,res+i*ld+p*48+j*16,vzr,vrm,dores);
      {__m128i b=_mm512_cvtusepi32_epi8(y);__asm__("":"+v"(b));_mm_storeu_si128((__m128i*)(dst+i*ld+p*48+j*16),b);}}}
}
static T void ovl(int kp,const uint8_t*w,const uint8_t*panels,int np,const uint8_t*res,size_t ld,uint8_t*dst,int dores){
  const __m512 vm=_mm512_set1_ps(0.0005f),vrm=_mm512_set1_ps(0.7f);const __m512i vzr=_mm512_set1_epi32(90);
  _Alignas(64) int32_t buf[24*16];
  for(int p=0;p<=np;p++){const uint8_t*pp=panels+(size_t)(p<np?p:0)*kp*48;__m512i c[8][3];
    _Pragma("clang loop unroll(full)") for(int i=0;i<8;i++)c[i][0]=c[i][1]=c[i][2]=_mm512_setzero_si512();
    const int G=kp/4, per=(24+G-1)/G; int e=0;
    _Pragma("clang loop unroll(full)") for(int g=0;g<G;g++){__m512i x0=_mm512_loadu_si512(pp+g*192),x1=_mm512_loadu_si512(pp+g*192+64),x2=_mm512_loadu_si512(pp+g*192+128);
      _Pragma("clang loop unroll(full)") for(int i=0;i<8;i++){const int32_t*wp=(const int32_t*)(w+g*32+i*4);
        __asm__("vpdpbusd %[w]%{1to16%}, %[x], %[c]":[c]"+v"(c[i][0]):[x]"v"(x0),[w]"m"(*wp));
        __asm__("vpdpbusd %[w]%{1to16%}, %[x], %[c]":[c]"+v"(c[i][1]):[x]"v"(x1),[w]"m"(*wp));
        __asm__("vpdpbusd %[w]%{1to16%}, %[x], %[c]":[c]"+v"(c[i][2]):[x]"v"(x2),[w]"m"(*wp));}
      if(p>0) _Pragma("clang loop unroll(full)") for(int u=0;u<per;u++,e++) if(e<24){int i=e/3,j=e%3;
        __m512i y=rq1(_mm512_load_si512(buf+e*16),vm,res+i*ld+(p-1)*48+j*16,vzr,vrm,dores);
        {__m128i b=_mm512_cvtusepi32_epi8(y);__asm__("":"+v"(b));_mm_storeu_si128((__m128i*)(dst+i*ld+(p-1)*48+j*16),b);}}}
    if(p<np) _Pragma("clang loop unroll(full)") for(int i=0;i<8;i++)for(int j=0;j<3;j++)_mm512_store_si512(buf+(i*3+j)*16,c[i][j]);}
}

// 4x48 tiles, software-pipelined: the previous tile's 12 sums stay in registers and are
// requantised one vector per k group inside the next tile's MAC loop (no spill).
static T void ovl4(int kp,const uint8_t*w,const uint8_t*panels,int np,const uint8_t*res,size_t ld,uint8_t*dst,int dores){
  const __m512 vm=_mm512_set1_ps(0.0005f),vrm=_mm512_set1_ps(0.7f);const __m512i vzr=_mm512_set1_epi32(90);
  __m512i q[4][3]; int qp=-1,qh=0;
  _Pragma("clang loop unroll(full)") for(int i=0;i<4;i++)q[i][0]=q[i][1]=q[i][2]=_mm512_setzero_si512();
  for(int p=0;p<np;p++) for(int h=0;h<2;h++){const uint8_t*pp=panels+(size_t)p*kp*48;__m512i c[4][3];
    _Pragma("clang loop unroll(full)") for(int i=0;i<4;i++)c[i][0]=c[i][1]=c[i][2]=_mm512_setzero_si512();
    const uint8_t*wh=w+h*16;
    const uint8_t*rq=res+(size_t)(qh*4)*ld+(size_t)qp*48; uint8_t*dq=dst+(size_t)(qh*4)*ld+(size_t)qp*48;
    _Pragma("clang loop unroll(full)") for(int g=0;g<kp/4;g++){
      __m512i x0=_mm512_loadu_si512(pp+g*192),x1=_mm512_loadu_si512(pp+g*192+64),x2=_mm512_loadu_si512(pp+g*192+128);
      _Pragma("clang loop unroll(full)") for(int i=0;i<4;i++){const int32_t*wp=(const int32_t*)(wh+g*32+i*4);
        __asm__("vpdpbusd %[w]%{1to16%}, %[x], %[c]":[c]"+v"(c[i][0]):[x]"v"(x0),[w]"m"(*wp));
        __asm__("vpdpbusd %[w]%{1to16%}, %[x], %[c]":[c]"+v"(c[i][1]):[x]"v"(x1),[w]"m"(*wp));
        __asm__("vpdpbusd %[w]%{1to16%}, %[x], %[c]":[c]"+v"(c[i][2]):[x]"v"(x2),[w]"m"(*wp));}
      if(g<12 && qp>=0){const int i=g/3,j=g%3;
        __m512i y=rq1(q[i][j],vm,rq+i*ld+j*16,vzr,vrm,dores);
        __m128i b=_mm512_cvtusepi32_epi8(y);__asm__("":"+v"(b));_mm_storeu_si128((__m128i*)(dq+i*ld+j*16),b);}}
    _Pragma("clang loop unroll(full)") for(int i=0;i<4;i++){q[i][0]=c[i][0];q[i][1]=c[i][1];q[i][2]=c[i][2];}
    qp=p;qh=h;}
  {const uint8_t*rq=res+(size_t)(qh*4)*ld+(size_t)qp*48; uint8_t*dq=dst+(size_t)(qh*4)*ld+(size_t)qp*48;
   _Pragma("clang loop unroll(full)") for(int e=0;e<12;e++){const int i=e/3,j=e%3;
     __m512i y=rq1(q[i][j],vm,rq+i*ld+j*16,vzr,vrm,dores);
     __m128i b=_mm512_cvtusepi32_epi8(y);__asm__("":"+v"(b));_mm_storeu_si128((__m128i*)(dq+i*ld+j*16),b);}}
}
// one entry per (K, scheme): K and the residual flag constants inside each (res: 0 or 1)
#define ENTRY(name, scheme, K) TN void name(const uint8_t*w,const uint8_t*pa,int np,const uint8_t*r,size_t ld,uint8_t*d,int res){if(res)scheme(K,w,pa,np,r,ld,d,1);else scheme(K,w,pa,np,r,ld,d,0);}
ENTRY(ovl4_64, ovl4, 64)
ENTRY(ovl4_128, ovl4, 128)
ENTRY(seq64, seq, 64)
ENTRY(ovl64, ovl, 64)
ENTRY(seq128, seq, 128)
ENTRY(ovl128, ovl, 128)
ENTRY(seq_148, seq, 148)
ENTRY(ovl_148, ovl, 148)
ENTRY(ovl4_148, ovl4, 148)
ENTRY(seq_256, seq, 256)
ENTRY(ovl_256, ovl, 256)
ENTRY(ovl4_256, ovl4, 256)
typedef void (*fn)(const uint8_t*,const uint8_t*,int,const uint8_t*,size_t,uint8_t*,int);
int main(int argc,char**argv){int K=atoi(argv[1]),res=atoi(argv[2]);long it=atol(argv[3]);int NP=16;
  uint8_t*pan=aligned_alloc(64,(size_t)K*48*NP),*w=aligned_alloc(64,K*8);size_t ld=48*NP;
  uint8_t*r=aligned_alloc(64,8*ld),*d1=aligned_alloc(64,8*ld),*d2=aligned_alloc(64,8*ld);
  for(size_t i=0;i<(size_t)K*48*NP;i++)pan[i]=i*7+3; for(int i=0;i<K*8;i++)w[i]=(i*13)%200; for(size_t i=0;i<8*ld;i++)r[i]=i*5;
  uint8_t*d3=aligned_alloc(64,8*ld);
  for(int m=0;m<3;m++){double best=1e9;for(int rep=0;rep<5;rep++){double t0=tc();for(long i=0;i<it;i++)((fn[4][3]){{seq64,ovl64,ovl4_64},{seq128,ovl128,ovl4_128},{seq_148,ovl_148,ovl4_148},{seq_256,ovl_256,ovl4_256}})[K==64?0:K==128?1:K==148?2:3][m](w,pan,NP,r,ld,m==2?d3:m?d2:d1,res);double dd=tc()-t0;if(dd<best)best=dd;}
    printf("K %d res %d %s: %.1f cycles/tile @3.69GHz (vpdpbusd %d)\n",K,res,m==2?"ovl4x48":m?"ovl":"seq",best/(it*NP)*3.69e9,K/4*24);}
  printf("same: %d %d\n",!memcmp(d1,d2,8*ld),!memcmp(d1,d3,8*ld));}
