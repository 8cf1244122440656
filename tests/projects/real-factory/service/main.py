"""The service, made by a factory (as the FastAPI docs' bigger applications do)."""

from fastapi import FastAPI
from pydantic import BaseModel

from service.model import load_model, predict


class House(BaseModel):
    size: float


def create_app() -> FastAPI:
    application = FastAPI(title="house prices")
    model = load_model()

    @application.get("/health")
    def health() -> dict:
        return {"ok": True}

    @application.post("/predict")
    def price(house: House) -> dict:
        return {"price": round(predict(model, house.size), 6)}

    return application


app = create_app()
