// The backbone's weakest int8 layers (bench/results/backbone_s11_x86.md), each timed by the
// calling thread's CPU time (load-robust when EM_THREADS=1) and wall time, minimum over the calls,
// with a residual where the network has one (em_qconv2d_u8 as the bottlenecks call it), and an
// FNV hash of the output (equal hashes: the same bytes, e.g. between two builds). Not a test.
//   clang -O3 -fno-strict-aliasing -ICShim/include bench/backbone_bench.c CShim/*.c CShim/ref/*.c \
//         CShim/io/*.c CShim/x86/*.c CShim/arm/*.c -lm -lpthread -ljpeg -o /tmp/bbb
//   EM_THREADS=1 [ONLY=stem,l1.conv3] /tmp/bbb [calls]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "em_dispatch.h"
#include "em_qkernels.h"
static double tcpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static double wall(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void fill(uint8_t *p, size_t n, unsigned seed){for(size_t i=0;i<n;i++)p[i]=(uint8_t)((seed=seed*1103515245u+12345u)>>20);}
int main(int argc,char**argv){
  const char*th=getenv("EM_THREADS");int threads=th?atoi(th):1; em_set_num_threads(threads);
  int calls=argc>1?atoi(argv[1]):20;
  struct {const char*name;int ci,h,w,co,k,s,p,res;} L[]={
   {"stem",3,800,1088,64,7,2,3,0},
   {"l1.conv1_0",64,200,272,64,1,1,0,0},
   {"l1.conv1",256,200,272,64,1,1,0,0},
   {"l1.conv3",64,200,272,256,1,1,0,1},
   {"l1.ds",64,200,272,256,1,1,0,0},
   {"l2.0.conv1",256,200,272,128,1,1,0,0},
   {"l2.conv3",128,100,136,512,1,1,0,1},
   {"l2.0.ds",256,200,272,512,1,2,0,0},
   {"l4.0.ds",1024,50,68,2048,1,2,0,0},
   {"l1.conv2",64,200,272,64,3,1,1,0},
  };
  const char*only=getenv("ONLY");
  const char*zo=getenv("ZOUT"); int zout=zo?atoi(zo):0; // ReLU outputs: zero point 0 (the pack path's form 2)
  for(unsigned li=0;li<sizeof L/sizeof L[0];li++){
    if(only&&!strstr(only,L[li].name))continue;
    int a=L[li].ci,b=L[li].h,c=L[li].w,d=L[li].co,e=L[li].k,g=L[li].s,h=L[li].p;
    int oh=(b+2*h-e)/g+1,ow=(c+2*h-e)/g+1,M=d,K=a*e*e;
    size_t nin=(size_t)a*b*c,nout=(size_t)d*oh*ow;
    uint8_t*in=malloc(nin),*out=malloc(nout),*res=malloc(nout);int8_t*w=malloc((size_t)M*K);
    fill(in,nin,3);fill(res,nout,9);fill((uint8_t*)w,(size_t)M*K,5);
    for(size_t i=0;i<(size_t)M*K;i++)if(w[i]==-128)w[i]=-127;
    void*pk=malloc(em_qpack_weights_bytes(M,K));float*mult=malloc(4*(size_t)M);
    for(int m=0;m<M;m++)mult[m]=0.0005f;
    em_qpack_weights(w,M,K,7,NULL,pk);
    double bc=1e30,bw=1e30;
    for(int i=0;i<calls;i++){double t0=wall(),c0=tcpu();
      em_qconv2d_u8(in,a,b,c,7,pk,d,e,e,g,h,mult,zout,L[li].res?res:NULL,90,0.7f,1,out,NULL);
      double dc=tcpu()-c0,dt=wall()-t0;if(dc<bc)bc=dc;if(dt<bw)bw=dt;}
    double mac=(double)M*K*oh*ow;
    unsigned long long hsh=1469598103934665603ull;for(size_t i=0;i<nout;i++)hsh=(hsh^out[i])*1099511628211ull;
    printf("%-12s cpu(thread0) %7.3f ms wall %7.3f ms  %6.1f GMAC/s(wall) hash %016llx\n",L[li].name,bc*1e3,bw*1e3,mac/bw*1e-9,hsh);
    free(in);free(out);free(res);free(w);free(pk);free(mult);
  }
}
