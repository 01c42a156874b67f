"""The configuration tree of AuxUSL (yacs), with the original's keys and defaults.

Keys and default values are those of the original ``unreidusl/config/defaults.py``. Keys marked
[added] are new in this reproduction; keys marked [unused] are parsed, as in the original, but
no code reads them (the original's behaviour is what the comment describes). Everything else
drives the same mechanism as in the original code.
"""

from .config import CfgNode as CN

_C = CN()

# ----------------------------------------------------------------------------------- model
_C.MODEL = CN()
# "cuda" or "cpu"; without a GPU "cuda" falls back to the CPU with a warning [behaviour added]
_C.MODEL.DEVICE = "cuda"
# resnet50bnn is the original's only model; resnet18bnn/resnet34bnn/resnet101bnn [added] are the
# same network on another torchvision depth (smoke scale uses resnet18bnn)
_C.MODEL.ARCH = "resnet50bnn"
# [added] ghost BatchNorm: in training, BN statistics per slice of BN_SLICES equal parts of the
# tracklet batch (running statistics from slice 0), what DataParallel on the authors' 4 GPUs did.
# Applied on the multi-GPU path (len(GPU_Device) > 1) when no DataParallel slices the batch
# already; 1 = plain BN over the whole batch. The single-GPU path (chunks) is unchanged.
_C.MODEL.BN_SLICES = 4
# [added] mixed precision: "off" | "bf16" | "fp16" (fp16 with a GradScaler on CUDA); losses in fp32
_C.MODEL.AMP = "off"
# [added] channels_last memory format for the backbone
_C.MODEL.CHANNELS_LAST = False

_C.MODEL.BACKBONE = CN()
# the original computes it but keeps stride 2 whatever the value; here the value is applied, and
# the default 2 is what the original runs
_C.MODEL.BACKBONE.LAST_STRIDE = 2
_C.MODEL.BACKBONE.FEAT_DIM = 2048  # [unused] the width comes from the backbone
# True: torchvision IMAGENET1K_V1 weights (the original always loads them); False: random init
_C.MODEL.BACKBONE.PRETRAIN = True
# [added] "" = the torchvision cache ($TORCH_HOME/hub/checkpoints), a path = a state dict file,
# "none" = random initialisation (same as PRETRAIN False)
_C.MODEL.BACKBONE.PRETRAIN_PATH = ""

_C.MODEL.HYBRIDMEMORY = CN()  # [unused] SpCL leftover
_C.MODEL.HYBRIDMEMORY.TEMP = 0.05
_C.MODEL.HYBRIDMEMORY.MOMENTUM = 0.2

_C.MODEL.LOSSES = CN()
_C.MODEL.LOSSES.ID_OPTION = 1  # 1: CE, 2: LSCE, 3: RLSCE
_C.MODEL.LOSSES.ID_K = 4  # K of RLSCE (neighbouring clusters that share the smoothing mass)
_C.MODEL.LOSSES.CE = CN()
_C.MODEL.LOSSES.CE.EPSILON = 0.1  # epsilon (eta in the paper) of LSCE/RLSCE
_C.MODEL.LOSSES.TRI = CN()  # [unused] empty node of the original
_C.MODEL.LOSSES.TRI_OPTION = 1  # 1: soft-margin batch-hard triplet, 2: WATL
_C.MODEL.LOSSES.TRI_MARGIN = 0.5  # margin m of WATL
_C.MODEL.LOSSES.TRI_LAMBDA = -1.0  # lambda of WATL

_C.MUTUAL_TEACH = CN()
_C.MUTUAL_TEACH.CE_SOFT_WRIGHT = 0.5  # (sic) soft-CE weight; the hard ID loss gets 1 - w
_C.MUTUAL_TEACH.TRI_SOFT_WRIGHT = 0.8  # soft-triplet weight; the hard triplet gets 1 - w
_C.MUTUAL_TEACH.ALPHA = 0.999  # largest EMA decay of the teacher

# --------------------------------------------------------------------------------- cluster
_C.CLUSTER = CN()
# Jaccard k1, k2: the original calls its Jaccard with 30 / 6 whatever these say; here they are
# applied, and the defaults are those values
_C.CLUSTER.K1 = 30
_C.CLUSTER.K2 = 6
_C.CLUSTER.EPS = 0.600  # DBSCAN radius when ADAPTIVE is False
_C.CLUSTER.ADAPTIVE = False  # eps = mean of the smallest ADAPTIVE_RHO of the pair distances
_C.CLUSTER.ADAPTIVE_RHO = 1.6e-3  # [added] the original's constant rho
_C.CLUSTER.MIN_SAMPLES = 4
_C.CLUSTER.ICDBSCAN_OPTION = False  # TOC in training: constrained DBSCAN with cannot-links
_C.CLUSTER.ICDBSCAN_RELAXED = 0.0
_C.CLUSTER.ICDBSCAN_CONSTRAINT_PATH = "cannotlink_pts.npz"
_C.CLUSTER.CCE_OPTION = False  # SCP in training
_C.CLUSTER.CCE_LAMBDA = 0.006
_C.CLUSTER.CCE_PATH = "cross_camera_relation_train.npz"
_C.CLUSTER.STR_OPTION = False  # STS in training
_C.CLUSTER.STR_LAMBDA = 0.6  # (also used at test time)
_C.CLUSTER.STR_GAMMA = 8.0  # (also used at test time)
_C.CLUSTER.STR_PATH = "spatio_temporal_relation_train.npz"

# ----------------------------------------------------------------------------------- input
_C.INPUT = CN()
_C.INPUT.SIZE_TRAIN = [256, 128]
_C.INPUT.SIZE_TEST = [256, 128]
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
_C.INPUT.DO_FLIP = True
_C.INPUT.FLIP_PROB = 0.5
_C.INPUT.DO_PAD = True
_C.INPUT.PADDING_MODE = "constant"
_C.INPUT.PADDING = 10
_C.INPUT.CJ = CN()
_C.INPUT.CJ.ENABLED = False
_C.INPUT.CJ.PROB = 0.8
_C.INPUT.CJ.BRIGHTNESS = 0.15
_C.INPUT.CJ.CONTRAST = 0.15
_C.INPUT.CJ.SATURATION = 0.1
_C.INPUT.CJ.HUE = 0.1
_C.INPUT.REA = CN()
_C.INPUT.REA.ENABLED = False
_C.INPUT.REA.PROB = 0.5
_C.INPUT.REA.MEAN = [0.485, 0.456, 0.406]

# -------------------------------------------------------------------------------- datasets
_C.DATASETS = CN()
_C.DATASETS.SOURCE = "market1501"  # [unused]
_C.DATASETS.TARGET = "dukemtmc"  # mars | duke (= dukevideo); the default names no dataset
_C.DATASETS.MODE = "all"  # Duke training tracklets: "all" whole, "dense" chunks of DENSE_STEP
_C.DATASETS.DENSE_STEP = 32
_C.DATASETS.DIR = ""  # the data root; the dataset is DIR/NAME
_C.DATASETS.MARS_INFO = "info"
_C.DATASETS.DUKE_INFO = "info"  # [unused] only the undocumented duke_track variant reads it
_C.DATASETS.NAME = "MARS"
# [added] MARS gallery: "torchreid" (the original: queries excluded, 9,330 tracklets) or
# "official" (the MATLAB protocol: all 12,180 test tracklets)
_C.DATASETS.MARS_GALLERY = "torchreid"

# ------------------------------------------------------------------------------ dataloader
_C.DATALOADER = CN()
_C.DATALOADER.NUM_INSTANCE = 4
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.TRAIN_BATCH_SIZE = 64
_C.DATALOADER.ITER_MODE = True  # [unused] an epoch is always the given number of iterations
_C.DATALOADER.ITERS = 100
_C.DATALOADER.TRAIN_SEQ_LEN = 15
_C.DATALOADER.CLUSTER_BATCH_SIZE = 64
_C.DATALOADER.CLUSTER_SEQ_LEN = 15
_C.DATALOADER.ITERS_CLUSTER_MULTIPLIER = -1.0  # > 0: DTI, iterations = round(x * #clusters)
# [added] > 0: at most this many iterations per epoch (the rehearsal's 20); 0: no cap
_C.DATALOADER.MAX_ITERS = 0
_C.DATALOADER.SAMPLE_CONSTRAINT = False
_C.DATALOADER.SAMPLE_CONSTRAINT_EXT_SIZE = -1
_C.DATALOADER.CLUSTER_SAMPLE_MULTI = 1
# [added] keep decoded frames in memory (smoke scale; the original reads every frame from disk)
_C.DATALOADER.CACHE_IMAGES = False

# auxiliary-information files (our .npz format, made by python -m auxusl.tools.make_aux); paths
# are relative to PICKLE_PATH, itself relative to the working directory as in the original
_C.PICKLE_PATH = "pickles"

# ----------------------------------------------------------------------------------- optim
_C.OPTIM = CN()
_C.OPTIM.FORWARD_BATCH_SIZE = 16  # single-GPU path: the batch is forwarded in chunks of this
_C.OPTIM.OPT = "adam"  # adam | amsgrad | sgd | rmsprop
_C.OPTIM.LR = 0.00035
_C.OPTIM.WEIGHT_DECAY = 5e-04
_C.OPTIM.MOMENTUM = 0.9
_C.OPTIM.SGD_DAMPENING = 0
_C.OPTIM.SGD_NESTEROV = False
_C.OPTIM.RMSPROP_ALPHA = 0.99
_C.OPTIM.ADAM_BETA1 = 0.9
_C.OPTIM.ADAM_BETA2 = 0.999
# the engine accepts only "single_step"; its learning rate LR * 0.1 ** (epoch // STEPS[-1]) is
# computed and logged but, as in the original, never given to the optimizer
_C.OPTIM.SCHED = "warmupmultisteplr"
_C.OPTIM.GAMMA = 0.1  # [unused]
_C.OPTIM.STEPS = [40, 70]
_C.OPTIM.COSINE_MAX_EPOCH = 1  # [unused]
_C.OPTIM.WARMUP_ITERS = 10  # [unused]
_C.OPTIM.WARMUP_FACTOR = 0.01  # [unused]
_C.OPTIM.WARMUP_METHOD = "linear"  # [unused]
_C.OPTIM.EPOCHS = 80

# ------------------------------------------------------------------------------------ test
_C.TEST = CN()
_C.TEST.PRINT_PERIOD = 200
_C.TEST.EVAL_PERIOD = 20  # [unused] CHECKPOING.SAVE_STEP decides when to evaluate
_C.TEST.EVAL_ONLY = False
_C.TEST.OVERLAP_CONSTRAINT = False  # TOC at test: +1000 to time-overlapping query-gallery pairs
_C.TEST.CONSTRAINT_PATH = "overlap_relation.npz"
_C.TEST.CCE_OPTION = False  # SCP at test
_C.TEST.CCE_LAMBDA = 0.03
_C.TEST.CCE_PATH = "cross_camera_relation_infer.npz"
_C.TEST.STR_OPTION = False  # STS at test (lambda, gamma from CLUSTER.STR_*)
_C.TEST.STR_PATH = "spatio_temporal_relation_infer.npz"
_C.TEST.RERANK = CN()
_C.TEST.RERANK.ENABLED = False
_C.TEST.RERANK.K1 = 20
_C.TEST.RERANK.K2 = 6
_C.TEST.RERANK.LAMBDA = 0.3

# ------------------------------------------------------------------------------------ misc
_C.MODE = "USL"  # the engine: usl_MTCluster_base (the only one; "USL" selects it too)
_C.OUTPUT_DIR = "logs/test"
_C.RESUME = ""
_C.PRINT_PERIOD = 100
_C.SEED = 1
_C.GPU_Device = [0]  # more than one entry: the multi-GPU path (losses on the whole batch)

_C.CHECKPOING = CN()  # (sic)
_C.CHECKPOING.REMAIN_CLASSIFIER = True  # False: the teacher is saved without its classifier
_C.CHECKPOING.SAVE_STEP = [1, 10, 20]  # > 0: evaluate at these epochs; < 0: every |s| epochs
_C.CHECKPOING.PRETRAIN_PATH = ""  # [unused]

_C.CUDNN_BENCHMARK = True

# [added] run-time settings of this reproduction
_C.SCALE = "paper"  # recorded in results.json: "paper", "smoke" or "rehearsal" (reproduce.sh --rehearse)
_C.NUM_THREADS = 0  # torch CPU threads (0: torch's default)
_C.PROGRESS = True  # tqdm bars
