from fastapi import FastAPI
from model import predict

app = FastAPI()


@app.post("/predict")
def predict_route(body: dict) -> dict:
    return predict(float(body["x"]))
