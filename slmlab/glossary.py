"""The glossary of the Help pages: every term the run, evaluation and export forms use.

Each term has a stable slug, the anchor of its entry (``/help/glossary/#<slug>``), which
form help links to; names and texts are translated (gettext_lazy, rendered per request).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Term:
    slug: str
    name: Promise | str
    text: Promise
    see: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    title: Promise
    terms: tuple[Term, ...]


GROUPS = (
    Group(
        _("Fine-tuning methods"),
        (
            Term(
                "lora",
                "LoRA",
                _(
                    "Low-Rank Adaptation. The model's own weights stay frozen; small extra "
                    "matrices are trained beside some of its layers and added to their output. "
                    "Only these few million numbers are learned and saved, which is why a run "
                    "fits on a small GPU and its result (the adapter) is a few megabytes."
                ),
                ("adapter", "rank", "alpha"),
            ),
            Term(
                "qlora",
                "QLoRA",
                _(
                    "LoRA on a base model loaded in 4-bit precision: the frozen weights take "
                    "about a quarter of the memory, the LoRA matrices are still trained in "
                    "16 or 32 bits. Slightly slower and a little less exact than LoRA, but it "
                    "lets a model two to three times larger fit on the same GPU."
                ),
                ("nf4", "compute-dtype", "quantization"),
            ),
            Term(
                "quantization",
                _("Quantization"),
                _(
                    "Storing weights with fewer bits (8 or 4 instead of 16) to save memory. "
                    "In the run form it applies to the frozen base model only (see QLoRA); in "
                    "exports, GGUF types such as Q8_0 and Q4_0 quantize the finished model."
                ),
                ("qlora", "gguf-types"),
            ),
            Term(
                "nf4",
                "NF4",
                _(
                    "NormalFloat 4: a 4-bit number format whose 16 values are spread like the "
                    "bell-shaped distribution of trained weights, so it loses less than plain "
                    "4-bit (FP4). The usual choice for QLoRA."
                ),
                ("qlora", "double-quantization"),
            ),
            Term(
                "double-quantization",
                _("Double quantization"),
                _(
                    "Also quantizes the scale factors that 4-bit weights need, saving about "
                    "0.4 bits per weight more (a few hundred MB on a 7B model) at almost no "
                    "cost in quality."
                ),
                ("nf4",),
            ),
            Term(
                "compute-dtype",
                _("Compute dtype (4-bit)"),
                _(
                    "The precision in which a 4-bit layer does its arithmetic: its weights are "
                    "unpacked to this type (bf16 or fp16, or fp32) for every multiplication. "
                    "bf16 where the device supports it; fp16 on older GPUs."
                ),
                ("precision", "qlora"),
            ),
            Term(
                "rank",
                _("Rank (r)"),
                _(
                    "The width of the LoRA matrices. Higher rank means more trainable numbers "
                    "and more capacity to learn, but more memory and a larger adapter. 8 to 16 "
                    "suits most small tasks; raise it when a task is large or far from what "
                    "the model already does."
                ),
                ("lora", "alpha"),
            ),
            Term(
                "alpha",
                _("Alpha"),
                _(
                    "A scale for what LoRA adds: the update is multiplied by alpha / rank. "
                    "Alpha set to twice the rank is a common start; raising alpha is much like "
                    "raising the learning rate for the LoRA layers."
                ),
                ("rank", "rslora"),
            ),
            Term(
                "dropout",
                _("Dropout"),
                _(
                    "During training, a random share of the inputs to the LoRA layers is set "
                    "to zero at each step (0.05 = 5%), so the adapter cannot lean on a few "
                    "exact features. A little helps against overfitting on small datasets; 0 "
                    "turns it off."
                ),
                ("validation-loss",),
            ),
            Term(
                "target-modules",
                _("Target modules"),
                _(
                    "The layers LoRA is attached to: the attention projections only, or every "
                    "linear layer (attention and MLP). All linear layers learn more per step "
                    "for a somewhat larger adapter."
                ),
                ("lora",),
            ),
            Term(
                "rslora",
                "rsLoRA",
                _(
                    "Rank-stabilised LoRA: scales the update by alpha / √rank instead of "
                    "alpha / rank, so a high rank does not shrink what the adapter learns. "
                    "Worth turning on with ranks of 32 and more."
                ),
                ("alpha", "rank"),
            ),
            Term(
                "dora",
                "DoRA",
                _(
                    "Weight-Decomposed LoRA: learns the direction of each weight with LoRA and "
                    "its length separately. Often a little better than LoRA at the same rank, "
                    "for somewhat slower steps."
                ),
                ("lora",),
            ),
            Term(
                "lora-embeddings",
                _("LoRA on embeddings and LM head"),
                _(
                    "Also trains LoRA on the token embeddings and the output layer. Needed only "
                    "when the model must use tokens in a new way (new special tokens, a new "
                    "language); otherwise it costs memory for little gain."
                ),
                ("lora", "token"),
            ),
        ),
    ),
    Group(
        _("Training settings"),
        (
            Term(
                "learning-rate",
                _("Learning rate"),
                _(
                    "How big a step the optimizer takes at each update. Too high and the loss "
                    "jumps or explodes; too low and it barely moves. LoRA usually trains well "
                    "between 1e-4 and 3e-4, about ten times higher than full fine-tuning."
                ),
                ("scheduler", "warmup", "optimizer"),
            ),
            Term(
                "epoch",
                _("Epoch"),
                _(
                    "One pass over every training example. Small datasets often need 2 or 3; "
                    "many more and the model starts memorising (watch the validation loss)."
                ),
                ("max-steps", "validation-loss"),
            ),
            Term(
                "max-steps",
                _("Max steps"),
                _(
                    "Stops training after this many optimizer steps, whatever the epochs say "
                    "(0 = train for the epochs). Handy for a quick first try."
                ),
                ("epoch", "batch-size"),
            ),
            Term(
                "batch-size",
                _("Batch size"),
                _(
                    "How many examples the model reads at once before the gradients are added "
                    "up. Larger batches use more memory; the number that matters for learning "
                    "is the effective batch, batch size times gradient accumulation."
                ),
                ("accumulation",),
            ),
            Term(
                "accumulation",
                _("Gradient accumulation"),
                _(
                    "Adds up the gradients of several batches before one optimizer step, so "
                    "batch 2 with accumulation 8 learns like batch 16 while only 2 examples "
                    "are in memory at a time. When a run runs out of memory the lab halves the "
                    "batch and doubles the accumulation for you."
                ),
                ("batch-size",),
            ),
            Term(
                "max-seq-len",
                _("Max sequence length"),
                _(
                    "Examples longer than this many tokens are cut. Memory grows with it, so "
                    "set it just above the length of your typical example (the dataset page "
                    "shows the token lengths)."
                ),
                ("token",),
            ),
            Term(
                "warmup",
                _("Warmup"),
                _(
                    "The learning rate starts near zero and rises to its value over the first "
                    "steps (a number of steps, or a share of all steps such as 0.03). It keeps "
                    "the first, noisy updates from throwing the model off course."
                ),
                ("learning-rate", "scheduler"),
            ),
            Term(
                "scheduler",
                _("Scheduler"),
                _(
                    "How the learning rate changes during the run: cosine (falls smoothly to "
                    "zero, a good default), linear (falls in a straight line), constant (stays "
                    "the same) or constant with warmup (rises during warmup, then stays)."
                ),
                ("learning-rate", "warmup"),
            ),
            Term(
                "optimizer",
                _("Optimizer"),
                _(
                    "The rule that turns gradients into weight updates. AdamW is the standard; "
                    "the 8-bit and paged variants save memory; SGD with momentum uses the "
                    "least memory but needs a carefully tuned learning rate."
                ),
                ("adamw", "adamw-8bit", "paged-adamw", "sgd"),
            ),
            Term(
                "adamw",
                "AdamW",
                _(
                    "Adam with decoupled weight decay: keeps two running averages per trained "
                    "number (8 bytes of state each, in 32-bit), which adapts the step size of "
                    "every weight. The reliable default."
                ),
                ("optimizer", "weight-decay"),
            ),
            Term(
                "adamw-8bit",
                _("8-bit AdamW"),
                _(
                    "AdamW whose two averages are stored in 8 bits (bitsandbytes): about a "
                    "quarter of the optimizer memory, with results very close to AdamW. CUDA "
                    "GPUs only."
                ),
                ("adamw", "paged-adamw"),
            ),
            Term(
                "paged-adamw",
                _("Paged AdamW"),
                _(
                    "AdamW (8-bit or 32-bit) whose state can move to CPU memory when the GPU "
                    "runs short, instead of failing with out of memory. It avoids crashes from "
                    "short memory spikes; a run that is too big is still too big. CUDA only."
                ),
                ("adamw-8bit",),
            ),
            Term(
                "sgd",
                _("SGD with momentum"),
                _(
                    "Plain stochastic gradient descent with one running average (momentum). "
                    "Half the state of AdamW, but more sensitive to the learning rate; try "
                    "ten times the AdamW learning rate as a start."
                ),
                ("optimizer", "learning-rate"),
            ),
            Term(
                "weight-decay",
                _("Weight decay"),
                _(
                    "Pulls trained weights a little towards zero at each step (0.01 is common, "
                    "0 turns it off), a mild guard against overfitting."
                ),
                ("adamw",),
            ),
            Term(
                "max-grad-norm",
                _("Max gradient norm"),
                _(
                    "Gradient clipping: when the gradients of a step are larger than this "
                    "length in total, they are scaled down to it (1.0 is usual). Stops one bad "
                    "batch from wrecking the run; 0 turns it off."
                ),
                ("learning-rate",),
            ),
            Term(
                "worker",
                _("Worker"),
                _(
                    "A process of the lab that runs jobs: training, evaluation, exports and "
                    "answers. Each reports its devices (GPUs, Apple MPS, the CPU) and their "
                    "memory; the run form checks your settings against the kind of worker you "
                    "choose, keeping a tenth of its memory free as a safety margin."
                ),
                ("precision", "quantization"),
            ),
            Term(
                "gradient-checkpointing",
                _("Gradient checkpointing"),
                _(
                    "Keeps only some of the intermediate results of the forward pass and "
                    "recomputes the rest during the backward pass: much less memory for long "
                    "sequences, steps about a quarter slower."
                ),
                ("max-seq-len",),
            ),
            Term(
                "precision",
                _("Precision"),
                _(
                    "The number format of training arithmetic: bf16 (fast, safe range, recent "
                    "GPUs and CPUs), fp16 (fast, older GPUs, needs loss scaling), fp32 (exact, "
                    "slow, twice the memory). Auto picks the fastest accurate one for the "
                    "device and the run page says which."
                ),
                ("bf16", "fp16", "fp32", "compute-dtype"),
            ),
            Term(
                "bf16",
                "bf16",
                _(
                    "bfloat16: 16 bits with the same range as 32-bit floats and less detail. "
                    "Rarely overflows, so training in it is simple and fast where supported."
                ),
                ("precision",),
            ),
            Term(
                "fp16",
                "fp16",
                _(
                    "float16: 16 bits with more detail than bf16 but a small range; large "
                    "values overflow, so training scales the loss to keep gradients in range."
                ),
                ("precision",),
            ),
            Term(
                "fp32",
                "fp32",
                _(
                    "float32: full precision. The reference for exactness, and what a CPU "
                    "without bf16 uses; twice the memory and much slower on GPUs."
                ),
                ("precision",),
            ),
            Term(
                "loss-on-answers",
                _("Loss on answers only"),
                _(
                    "The model learns only from the answer part of each example; the prompt "
                    "is read but not scored. Usually best for instruction data. Loss on the "
                    "whole text also teaches it to write prompts like yours."
                ),
                ("template",),
            ),
            Term(
                "seed",
                _("Seed"),
                _(
                    "The starting number of every random choice (LoRA initialisation, order of "
                    "examples, validation split). The same seed and settings give the same run."
                ),
                ("validation-split",),
            ),
            Term(
                "checkpoint",
                _("Checkpoint"),
                _(
                    "A snapshot of the adapter and optimizer saved during training, so a run "
                    "stopped by a restart can resume where it was."
                ),
                ("adapter",),
            ),
        ),
    ),
    Group(
        _("Data and prompts"),
        (
            Term(
                "token",
                _("Token"),
                _(
                    "The unit a model reads and writes: a word, a piece of a word or a "
                    "character. Lengths, limits and speeds are counted in tokens; English text "
                    "is about 4 characters per token."
                ),
                ("max-seq-len",),
            ),
            Term(
                "template",
                _("Prompt template"),
                _(
                    "How an example is turned into the text the model reads: the model's own "
                    "chat template (its special tokens around each turn), the Alpaca layout "
                    "(### Instruction / ### Response) or your own. Training, chat and "
                    "evaluation render prompts the same way."
                ),
                ("loss-on-answers",),
            ),
            Term(
                "validation-split",
                _("Validation split"),
                _(
                    "A share of the dataset (or a separate file) held out from training and "
                    "used only to measure the model, so the scores show how it does on "
                    "examples it never saw."
                ),
                ("validation-loss", "eval-set"),
            ),
            Term(
                "base-model",
                _("Base model"),
                _(
                    "The pretrained model from the model store that a run starts from and "
                    "that its adapter is added to."
                ),
                ("adapter",),
            ),
        ),
    ),
    Group(
        _("Measuring a run"),
        (
            Term(
                "loss",
                _("Loss"),
                _(
                    "How surprised the model is by the right answer, averaged per token "
                    "(cross-entropy). It goes down as the model learns; the training loss is "
                    "measured on the examples being trained on."
                ),
                ("validation-loss", "perplexity"),
            ),
            Term(
                "validation-loss",
                _("Validation loss"),
                _(
                    "The loss on the held-out validation rows. When training loss keeps "
                    "falling but validation loss rises, the model is memorising the training "
                    "examples (overfitting): stop earlier or use fewer epochs."
                ),
                ("loss", "validation-split"),
            ),
            Term(
                "perplexity",
                _("Perplexity"),
                _(
                    "e raised to the loss: roughly how many tokens the model hesitates between "
                    "at each step. Lower is better; 1 would be certainty."
                ),
                ("loss",),
            ),
            Term(
                "eval-set",
                _("Eval set"),
                _(
                    "The examples an evaluation scores: a dataset's validation rows or an "
                    "uploaded file in which every row has an expected output."
                ),
                ("validation-split",),
            ),
            Term(
                "exact-match",
                _("Exact match"),
                _(
                    "Passes when the reply equals the expected output after trimming spaces "
                    "(optionally ignoring case). Strict: right for short answers and labels."
                ),
                ("contains",),
            ),
            Term(
                "contains",
                _("Contains"),
                _("Passes when the expected output appears anywhere in the reply."),
                ("exact-match",),
            ),
            Term(
                "rouge-l",
                "ROUGE-L",
                _(
                    "The longest run of words the reply shares with the expected output, in "
                    "order (gaps allowed), as an F1 score from 0 to 1. Rewards replies that "
                    "say the same thing in mostly the same words."
                ),
                ("exact-match",),
            ),
            Term(
                "valid-json",
                _("Valid JSON"),
                _("Passes when the whole reply parses as JSON."),
                ("json-equal",),
            ),
            Term(
                "json-equal",
                _("JSON equal"),
                _(
                    "Passes when the reply and the expected output parse to equal JSON values "
                    "(key order and spacing do not matter)."
                ),
                ("valid-json",),
            ),
            Term(
                "regex",
                _("Regex match"),
                _("Passes when the reply matches the regular expression you give."),
            ),
            Term(
                "output-length",
                _("Output length"),
                _("The number of characters of the reply; neither higher nor lower is better."),
            ),
            Term(
                "confidence-interval",
                # xgettext:no-python-format
                _("95% confidence interval"),
                _(
                    "The range the true score most likely lies in, found by re-drawing the "
                    "examples at random many times (bootstrap). Few examples give wide ranges."
                ),
                ("p-value",),
            ),
            Term(
                "p-value",
                _("p-value (paired test)"),
                _(
                    "How likely a difference this large between base and tuned would be by "
                    "chance alone, comparing the two on the same examples (McNemar's test for "
                    "pass/fail metrics, a paired bootstrap for scores). Below 0.05 the lab "
                    "calls the difference real."
                ),
                ("confidence-interval",),
            ),
            Term(
                "temperature",
                _("Temperature"),
                _(
                    "Randomness of generation: 0 always takes the most likely token (greedy, "
                    "the same reply every time); higher values give more varied replies."
                ),
                ("top-p",),
            ),
            Term(
                "top-p",
                _("Top-p"),
                _(
                    "With temperature above 0, samples only among the most likely tokens whose "
                    "probabilities add up to p (0.9 = the top 90%)."
                ),
                ("temperature",),
            ),
            Term(
                "max-new-tokens",
                _("Max new tokens"),
                _("The longest reply, in tokens; generation also stops at the end-of-turn token."),
                ("token",),
            ),
        ),
    ),
    Group(
        _("Exports"),
        (
            Term(
                "adapter",
                _("Adapter"),
                _(
                    "The result of a LoRA run: only the small trained matrices, a few MB. It "
                    "needs the same base model to run (peft's PeftModel.from_pretrained loads "
                    "it onto the base)."
                ),
                ("lora", "merged"),
            ),
            Term(
                "merged",
                _("Merged model"),
                _(
                    "The adapter added into the base model's weights and saved as one ordinary "
                    "model (safetensors) that any transformers code loads without peft. A "
                    "4-bit trained adapter is merged onto the full-precision base."
                ),
                ("adapter", "gguf"),
            ),
            Term(
                "gguf",
                "GGUF",
                _(
                    "The single-file model format of llama.cpp, Ollama and LM Studio: weights, "
                    "tokenizer and chat template in one file, for fast local use on a laptop. "
                    "The lab loads every GGUF back and checks that it answers like the run."
                ),
                ("gguf-types", "modelfile"),
            ),
            Term(
                "gguf-types",
                _("GGUF types (F16, Q8_0, Q4_0, Q4_K_M)"),
                _(
                    "How many bits a GGUF file spends per weight: F16 keeps 16 (exact), Q8_0 "
                    "about 8 (almost exact, half the size), Q4_0 and Q4_K_M about 4 (a quarter "
                    "of the size, slightly different answers; Q4_K_M is the closer of the two)."
                ),
                ("gguf", "kl-divergence"),
            ),
            Term(
                "kl-divergence",
                _("Token agreement and KL divergence"),
                _(
                    "How a quantized file is compared with the merged model on a fixed text: "
                    "the share of positions where both pick the same next token, and the mean "
                    "KL divergence between their next-token probabilities (0 = identical)."
                ),
                ("gguf-types",),
            ),
            Term(
                "modelfile",
                _("Modelfile"),
                _(
                    "Ollama's recipe for a model, shipped with every GGUF download: the file, "
                    "its chat template and its stop token. Run ollama create with it."
                ),
                ("gguf",),
            ),
            Term(
                "safetensors",
                "safetensors",
                _(
                    "A safe, fast file format for weights (no code inside, unlike pickle), used "
                    "by adapters and merged models."
                ),
                ("merged",),
            ),
        ),
    ),
)

TERMS = {term.slug: term for group in GROUPS for term in group.terms}
