import os

# numpy's BLAS would start a thread per core for every matrix product and spin them between calls. A search
# multiplies one vector by the tenant's matrix, and every web and worker process serves requests in
# parallel already: on a busy server the extra threads only contend (measured: a 10 ms search took 100s of
# ms with two). Set before numpy is first imported (knowledge.embeddings); an operator's value wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
